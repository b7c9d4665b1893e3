/// Paths as the system's bytes. A path that is not valid UTF-8 cannot be a Swift String as is, so
/// each byte of an invalid sequence is carried as one private-use scalar, U+10FF00 + byte (as
/// Python's surrogateescape does with surrogates), and turned back into that byte when the
/// path is handed to the system. Valid UTF-8 is unchanged both ways.
public enum FilePath {
    private static let escapeBase: UInt32 = 0x10_FF00

    /// The String of the system bytes `bytes` (without the terminating NUL).
    public static func string(fromSystem bytes: [UInt8]) -> String {
        var scalars = String.UnicodeScalarView()
        var index = 0
        while index < bytes.count {
            if let (scalar, length) = decodeOne(bytes, at: index) {
                scalars.append(scalar)
                index += length
            } else {
                scalars.append(Unicode.Scalar(escapeBase + UInt32(bytes[index]))!)
                index += 1
            }
        }
        return String(scalars)
    }

    /// The system bytes of `path`, NUL-terminated.
    public static func systemBytes(_ path: String) -> [CChar] {
        var bytes: [UInt8] = []
        for scalar in path.unicodeScalars {
            if scalar.value >= escapeBase + 0x80, scalar.value <= escapeBase + 0xff {
                bytes.append(UInt8(scalar.value - escapeBase))
            } else {
                bytes.append(contentsOf: Array(String(scalar).utf8))
            }
        }
        return bytes.map { CChar(bitPattern: $0) } + [0]
    }

    public static func withSystemPath<T>(_ path: String, _ body: (UnsafePointer<CChar>) throws -> T) rethrows -> T {
        try systemBytes(path).withUnsafeBufferPointer { try body($0.baseAddress!) }
    }

    /// `path` for a message: escaped bytes shown as \xNN, as a shell's $'…' would write them.
    public static func display(_ path: String) -> String {
        String(path.unicodeScalars.map { scalar -> String in
            guard scalar.value >= escapeBase + 0x80, scalar.value <= escapeBase + 0xff else { return String(scalar) }
            return "\\x" + String(scalar.value - escapeBase, radix: 16, uppercase: false)
        }.joined())
    }

    /// One valid UTF-8 scalar at `index`, and its length in bytes; nil where the bytes are not
    /// valid UTF-8.
    private static func decodeOne(_ bytes: [UInt8], at index: Int) -> (Unicode.Scalar, Int)? {
        let lead = bytes[index]
        if lead < 0x80 { return (Unicode.Scalar(lead), 1) }
        let length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC2 ? 2 : 0
        guard length > 0, lead < 0xF5, index + length <= bytes.count else { return nil }
        var decoder = UTF8()
        var iterator = bytes[index..<index + length].makeIterator()
        guard case .scalarValue(let scalar) = decoder.decode(&iterator), String(scalar).utf8.count == length else { return nil }
        return (scalar, length)
    }
}
