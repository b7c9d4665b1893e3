import Foundation

/// A JSON document, parsed strictly and without recursion beyond `maximumDepth`: what a
/// safetensors header is. Objects keep their members in order, duplicates included, so that a
/// caller can refuse duplicate names (Foundation's parser would silently keep one).
enum JSONValue {
    case object([(key: String, value: JSONValue)])
    case array([JSONValue])
    case string(String)
    /// The number's text as written, so integers of any size are read exactly or refused.
    case number(String)
    case bool(Bool)
    case null

    static let maximumDepth = 32

    /// Parses `bytes` (UTF-8) as one JSON value with optional surrounding whitespace; the error
    /// names the byte offset of the problem.
    static func parse(_ bytes: [UInt8]) throws(JSONError) -> JSONValue {
        var parser = Parser(bytes: bytes)
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.position == bytes.count else { throw parser.error("text after the JSON value") }
        return value
    }

    var integer: Int? {
        guard case .number(let text) = self else { return nil }
        return Int(text)
    }
}

struct JSONError: Error {
    let description: String
}

private struct Parser {
    let bytes: [UInt8]
    var position = 0

    func error(_ what: String) -> JSONError { JSONError(description: "\(what) at byte \(position)") }

    mutating func skipWhitespace() {
        while position < bytes.count, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[position]) { position += 1 }
    }

    mutating func expect(_ literal: String) throws(JSONError) {
        let expected = Array(literal.utf8)
        guard bytes.count - position >= expected.count, Array(bytes[position..<position + expected.count]) == expected else {
            throw error("expected \(literal)")
        }
        position += expected.count
    }

    mutating func value(depth: Int) throws(JSONError) -> JSONValue {
        guard depth < JSONValue.maximumDepth else { throw error("nesting deeper than \(JSONValue.maximumDepth)") }
        skipWhitespace()
        guard position < bytes.count else { throw error("unexpected end") }
        switch bytes[position] {
        case UInt8(ascii: "{"):
            position += 1
            var members: [(key: String, value: JSONValue)] = []
            skipWhitespace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "}") { position += 1; return .object(members) }
            while true {
                skipWhitespace()
                let key = try string()
                skipWhitespace()
                try expect(":")
                members.append((key, try value(depth: depth + 1)))
                skipWhitespace()
                if position < bytes.count, bytes[position] == UInt8(ascii: ",") { position += 1; continue }
                try expect("}")
                return .object(members)
            }
        case UInt8(ascii: "["):
            position += 1
            var elements: [JSONValue] = []
            skipWhitespace()
            if position < bytes.count, bytes[position] == UInt8(ascii: "]") { position += 1; return .array(elements) }
            while true {
                elements.append(try value(depth: depth + 1))
                skipWhitespace()
                if position < bytes.count, bytes[position] == UInt8(ascii: ",") { position += 1; continue }
                try expect("]")
                return .array(elements)
            }
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try expect("null"); return .null
        default: return .number(try number())
        }
    }

    /// A string without escapes beyond the simple ones (tensor names and dtypes need no more);
    /// \u escapes are refused rather than half-decoded.
    mutating func string() throws(JSONError) -> String {
        guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw error("expected a string") }
        position += 1
        var text: [UInt8] = []
        while position < bytes.count {
            let byte = bytes[position]
            position += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard let string = String(validating: text, as: UTF8.self) else { throw error("string is not UTF-8") }
                return string
            case UInt8(ascii: "\\"):
                guard position < bytes.count else { throw error("unexpected end") }
                let escapes: [UInt8: UInt8] = [0x22: 0x22, 0x5c: 0x5c, 0x2f: 0x2f, 0x62: 0x08, 0x66: 0x0c, 0x6e: 0x0a, 0x72: 0x0d, 0x74: 0x09]
                guard let unescaped = escapes[bytes[position]] else { throw error("unsupported string escape") }
                text.append(unescaped)
                position += 1
            case 0..<0x20: throw error("control character in a string")
            default: text.append(byte)
            }
        }
        throw error("unterminated string")
    }

    mutating func number() throws(JSONError) -> String {
        let start = position
        while position < bytes.count, "+-0123456789.eE".utf8.contains(bytes[position]) { position += 1 }
        guard position > start, let text = String(validating: bytes[start..<position], as: UTF8.self),
              Double(text) != nil else { throw error("expected a value") }
        return text
    }
}

/// `text` as a JSON string literal: quotes, backslashes and control characters escaped.
public func jsonQuoted(_ text: String) -> String {
    "\"" + text.unicodeScalars.map { scalar in
        switch scalar {
        case "\"": "\\\""
        case "\\": "\\\\"
        case _ where scalar.value < 0x20: String(format: "\\u%04x", scalar.value)
        default: String(scalar)
        }
    }.joined() + "\""
}
