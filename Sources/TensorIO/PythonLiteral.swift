/// The Python literals an .npy header is made of, parsed as `ast.literal_eval` (which NumPy
/// uses) parses them: strings in either quote with escapes, integers, True, False, None, tuples,
/// lists and dicts, with whitespace and comments between tokens. A dict keeps every pair in
/// order; NumPy's reading (the last of duplicate keys wins) is the caller's.
indirect enum PythonLiteral {
    case string(String)
    case integer(Int)
    case bool(Bool)
    case none
    case tuple([PythonLiteral])
    case list([PythonLiteral])
    case dict([(key: PythonLiteral, value: PythonLiteral)])

    /// The one literal `text` holds, or a message saying where it stops being one. `longSuffix`
    /// accepts Python 2's `1L` (NumPy does for .npy versions 1 and 2).
    static func parse(_ text: String, longSuffix: Bool) throws(LiteralError) -> PythonLiteral {
        var parser = Parser(scalars: Array(text.unicodeScalars), longSuffix: longSuffix)
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.position == parser.scalars.count else { throw parser.error("text after the literal") }
        return value
    }

    struct LiteralError: Error {
        let description: String
    }

    private struct Parser {
        let scalars: [Unicode.Scalar]
        let longSuffix: Bool
        var position = 0

        func error(_ problem: String) -> LiteralError {
            LiteralError(description: position < scalars.count ? "\(problem) at character \(position)" : "\(problem) at the end")
        }

        /// Skips whitespace and `#` comments (to the end of the line).
        mutating func skipSpace() {
            while position < scalars.count {
                if [" ", "\t", "\n", "\r", "\u{0C}"].contains(scalars[position]) {
                    position += 1
                } else if scalars[position] == "#" {
                    while position < scalars.count && scalars[position] != "\n" { position += 1 }
                } else {
                    return
                }
            }
        }

        mutating func value(depth: Int) throws(LiteralError) -> PythonLiteral {
            guard depth < 32 else { throw error("literal nested too deep") }
            skipSpace()
            guard position < scalars.count else { throw error("missing value") }
            switch scalars[position] {
            case "'", "\"": return .string(try string())
            case "(":
                let (items, trailingComma) = try sequence(until: ")", depth: depth)
                // (x) is x; (x,) and () are tuples.
                return items.count == 1 && !trailingComma ? items[0] : .tuple(items)
            case "[": return .list(try sequence(until: "]", depth: depth).items)
            case "{": return try dict(depth: depth)
            case "-", "+", "0"..."9": return .integer(try integer())
            default:
                for (word, literal) in [("True", PythonLiteral.bool(true)), ("False", .bool(false)), ("None", .none)]
                where matches(word) {
                    position += word.unicodeScalars.count
                    return literal
                }
                throw error("unexpected '\(scalars[position])'")
            }
        }

        /// Whether `word` starts here as a whole name.
        func matches(_ word: String) -> Bool {
            let letters = Array(word.unicodeScalars)
            guard position + letters.count <= scalars.count, Array(scalars[position..<position + letters.count]) == letters else { return false }
            let next = position + letters.count
            return next == scalars.count || !(scalars[next].properties.isAlphabetic || scalars[next] == "_" || ("0"..."9").contains(scalars[next]))
        }

        mutating func sequence(until close: Unicode.Scalar, depth: Int) throws(LiteralError) -> (items: [PythonLiteral], trailingComma: Bool) {
            position += 1
            var items: [PythonLiteral] = []
            var comma = false
            while true {
                skipSpace()
                guard position < scalars.count else { throw error("unclosed '\(close == ")" ? "(" : "[")'") }
                if scalars[position] == close { position += 1; return (items, comma) }
                guard items.isEmpty || comma else { throw error("expected ',' or '\(close)'") }
                items.append(try value(depth: depth + 1))
                skipSpace()
                comma = position < scalars.count && scalars[position] == ","
                if comma { position += 1 }
            }
        }

        mutating func dict(depth: Int) throws(LiteralError) -> PythonLiteral {
            position += 1
            var pairs: [(key: PythonLiteral, value: PythonLiteral)] = []
            var comma = false
            while true {
                skipSpace()
                guard position < scalars.count else { throw error("unclosed '{'") }
                if scalars[position] == "}" { position += 1; return .dict(pairs) }
                guard pairs.isEmpty || comma else { throw error("expected ',' or '}'") }
                let key = try value(depth: depth + 1)
                skipSpace()
                guard position < scalars.count, scalars[position] == ":" else { throw error("expected ':'") }
                position += 1
                pairs.append((key, try value(depth: depth + 1)))
                skipSpace()
                comma = position < scalars.count && scalars[position] == ","
                if comma { position += 1 }
            }
        }

        mutating func integer() throws(LiteralError) -> Int {
            var negative = false
            while position < scalars.count, scalars[position] == "-" || scalars[position] == "+" {
                if scalars[position] == "-" { negative.toggle() }
                position += 1
                skipSpace()
            }
            var digits = ""
            while position < scalars.count, ("0"..."9").contains(scalars[position]) || scalars[position] == "_" {
                if scalars[position] != "_" { digits.unicodeScalars.append(scalars[position]) }
                position += 1
            }
            if longSuffix, position < scalars.count, scalars[position] == "L" || scalars[position] == "l" { position += 1 }
            guard !digits.isEmpty, let value = Int(digits) else { throw error(digits.isEmpty ? "expected a number" : "integer \(digits) too large") }
            guard digits == "0" || digits.first != "0" else { throw error("integer with a leading zero") }
            return negative ? -value : value
        }

        mutating func string() throws(LiteralError) -> String {
            let quote = scalars[position]
            position += 1
            var text = String.UnicodeScalarView()
            while position < scalars.count {
                let scalar = scalars[position]
                position += 1
                if scalar == quote { return String(text) }
                guard scalar != "\n" else { break }
                guard scalar == "\\" else { text.append(scalar); continue }
                guard position < scalars.count else { break }
                let escaped = scalars[position]
                position += 1
                let simple: [Unicode.Scalar: Unicode.Scalar] = ["\\": "\\", "'": "'", "\"": "\"", "n": "\n", "t": "\t", "r": "\r",
                                                                "a": "\u{07}", "b": "\u{08}", "f": "\u{0C}", "v": "\u{0B}", "0": "\0"]
                if let replacement = simple[escaped] { text.append(replacement) }
                else if escaped == "\n" { continue }
                else { text.append("\\"); text.append(escaped) }
            }
            throw error("unclosed string")
        }
    }
}
