import Foundation

/// NumPy's .npy format, versions 1 to 3: a magic string, a version, a little-endian header length,
/// a Python-literal dict header (descr, fortran_order, shape), then the raw C-order data.
public enum Npy {
    /// The element types read here; floats are converted to float32 on load. bfloat16 has no
    /// NumPy type code: ml_dtypes' bfloat16 arrays are saved by `np.save` with descr `'<V2'` (a
    /// 2-byte void), which is what is written here and read as bfloat16 (as is `'|V2'`, and the
    /// descr `'bfloat16'` that a header written from `str(array.dtype)` holds).
    public enum DType: String, Sendable, CaseIterable {
        case float32 = "f4", float16 = "f2", bfloat16 = "V2", float64 = "f8", int32 = "i4", int64 = "i8"

        public var byteCount: Int {
            switch self {
            case .float16, .bfloat16: 2
            case .float32, .int32: 4
            case .float64, .int64: 8
            }
        }

        public var isFloat: Bool { self != .int32 && self != .int64 }
    }

    public struct Header: Equatable, Sendable {
        public var dtype: DType
        public var shape: [Int]
        /// Bytes before the data.
        public var dataOffset: Int
        public var elementCount: Int { shape.reduce(1, *) }
    }

    /// Reads a floating-point array as float32 with its shape.
    public static func readFloats(_ path: String) throws(TensorIOError) -> (shape: [Int], values: [Float]) {
        let bytes = try contents(of: path)
        let header = try requireFloats(parseHeader(bytes, path: path), path: path)
        var values = [Float](repeating: 0, count: header.elementCount)
        bytes.withUnsafeBytes { raw in
            values.withUnsafeMutableBufferPointer {
                convert(UnsafeRawBufferPointer(rebasing: raw[header.dataOffset...]), dtype: header.dtype, into: $0)
            }
        }
        return (header.shape, values)
    }

    /// The header of a file that must hold a floating-point array.
    public static func readFloatHeader(_ path: String) throws(TensorIOError) -> Header {
        try requireFloats(readHeader(path), path: path)
    }

    private static func requireFloats(_ header: Header, path: String) throws(TensorIOError) -> Header {
        guard header.dtype.isFloat else {
            throw TensorIOError(path, "dtype is \(header.dtype.rawValue), expected a float array (f4, f2, f8 or bfloat16 <V2)")
        }
        return header
    }

    /// Converts `target.count` little-endian elements of a float dtype to float32.
    static func convert(_ data: UnsafeRawBufferPointer, dtype: DType, into target: UnsafeMutableBufferPointer<Float>) {
        switch dtype {
        case .float32:
            UnsafeMutableRawBufferPointer(target).copyMemory(from: UnsafeRawBufferPointer(rebasing: data[..<(target.count * 4)]))
        case .float16:
            for i in target.indices { target[i] = Float(Float16(bitPattern: data.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) }
        case .bfloat16:
            for i in target.indices {
                target[i] = Float(bitPattern: UInt32(data.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) << 16)
            }
        case .float64:
            for i in target.indices { target[i] = Float(data.loadUnaligned(fromByteOffset: i * 8, as: Double.self)) }
        case .int32, .int64:
            preconditionFailure("integer dtype converted as float")
        }
    }

    /// Reads an integer array (int32 or int64) with its shape.
    public static func readIntegers(_ path: String) throws(TensorIOError) -> (shape: [Int], values: [Int]) {
        let bytes = try contents(of: path)
        let header = try parseHeader(bytes, path: path)
        guard header.dtype == .int32 || header.dtype == .int64 else {
            throw TensorIOError(path, "dtype is \(header.dtype.rawValue), expected an integer array (i4 or i8)")
        }
        let values: [Int] = bytes.withUnsafeBytes { raw in
            let data = UnsafeRawBufferPointer(rebasing: raw[header.dataOffset...])
            return (0..<header.elementCount).map {
                header.dtype == .int32 ? Int(data.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self))
                                       : Int(data.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self))
            }
        }
        return (header.shape, values)
    }

    /// The header of a file, checked against the file's size.
    public static func readHeader(_ path: String) throws(TensorIOError) -> Header {
        try parseHeader(try contents(of: path), path: path)
    }

    /// The bytes of a .npy file holding `values` in C order, as float32 or rounded to `dtype`.
    public static func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], dtype: DType = .float32) -> Data {
        precondition(shape.reduce(1, *) == values.count, "shape does not match the element count")
        return headerBytes(dtype: dtype, shape: shape) + elements(values, as: dtype)
    }

    /// `values` as little-endian elements of float `dtype`, rounded to nearest even.
    public static func elements(_ values: UnsafeBufferPointer<Float>, as dtype: DType) -> Data {
        switch dtype {
        case .float32: Data(buffer: values)
        case .float16: values.map { Float16($0).bitPattern }.withUnsafeBufferPointer { Data(buffer: $0) }
        case .bfloat16: values.map(bfloat16Bits).withUnsafeBufferPointer { Data(buffer: $0) }
        case .float64: values.map(Double.init).withUnsafeBufferPointer { Data(buffer: $0) }
        case .int32, .int64: preconditionFailure("float values encoded as integers")
        }
    }

    /// The upper half of a float32, rounded to nearest even; NaN stays a (quiet) NaN.
    static func bfloat16Bits(_ value: Float) -> UInt16 {
        guard !value.isNaN else { return UInt16(value.bitPattern >> 16) | 0x40 }
        let bits = value.bitPattern
        return UInt16((bits &+ 0x7fff &+ ((bits >> 16) & 1)) >> 16)
    }

    /// A version 1.0 header padded with spaces so the data starts on a 64-byte boundary.
    public static func headerBytes(dtype: DType, shape: [Int]) -> Data {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var dict = "{'descr': '<\(dtype.rawValue)', 'fortran_order': False, 'shape': (\(dims)), }"
        let unpadded = 10 + dict.utf8.count + 1
        dict += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        data.append(contentsOf: [UInt8(dict.utf8.count & 0xff), UInt8(dict.utf8.count >> 8)])
        data.append(contentsOf: Array(dict.utf8))
        return data
    }

    private static func contents(of path: String) throws(TensorIOError) -> Data {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw TensorIOError(path, "no such file")
        }
        guard !isDirectory.boolValue else { throw TensorIOError(path, "is a directory, expected a .npy file") }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw TensorIOError(path, "cannot be read (\(error.localizedDescription))")
        }
    }

    static func parseHeader(_ bytes: Data, path: String) throws(TensorIOError) -> Header {
        let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
        guard bytes.count >= 10, Array(bytes.prefix(6)) == magic else {
            throw TensorIOError(path, "not a .npy file (bad magic string)")
        }
        let major = bytes[bytes.startIndex + 6]
        let lengthBytes: Int
        switch major {
        case 1: lengthBytes = 2
        case 2, 3: lengthBytes = 4
        default: throw TensorIOError(path, "unsupported .npy version \(major)")
        }
        guard bytes.count >= 8 + lengthBytes else { throw TensorIOError(path, "truncated header") }
        var headerLength = 0
        for i in 0..<lengthBytes { headerLength |= Int(bytes[bytes.startIndex + 8 + i]) << (8 * i) }
        let dataOffset = 8 + lengthBytes + headerLength
        guard bytes.count >= dataOffset,
              let text = String(data: bytes.subdata(in: bytes.startIndex + 8 + lengthBytes..<bytes.startIndex + dataOffset),
                                encoding: major == 3 ? .utf8 : .isoLatin1) else {
            throw TensorIOError(path, "truncated header")
        }
        let header = try parseDictionary(text, path: path, dataOffset: dataOffset)
        // A shape whose size overflows would otherwise wrap to a small count that matches the file.
        let (expected, overflow) = header.shape.reduce((header.dtype.byteCount, false)) { size, dim in
            let product = size.0.multipliedReportingOverflow(by: dim)
            return (product.partialValue, size.1 || product.overflow)
        }
        let found = bytes.count - dataOffset
        guard !overflow, found == expected else {
            throw TensorIOError(path, found < expected || overflow
                ? "truncated: shape \(shapeText(header.shape)) of \(header.dtype.rawValue) needs \(expected) data bytes, file has \(found)"
                : "\(found - expected) bytes beyond the data of shape \(shapeText(header.shape))")
        }
        return header
    }

    private static func parseDictionary(_ text: String, path: String, dataOffset: Int) throws(TensorIOError) -> Header {
        func value(of key: String) -> Substring? {
            guard let keyRange = text.range(of: "'\(key)'") ?? text.range(of: "\"\(key)\""),
                  let colon = text[keyRange.upperBound...].firstIndex(of: ":") else { return nil }
            return text[text.index(after: colon)...].drop { $0 == " " }
        }
        guard let descrText = value(of: "descr"), let quote = descrText.first, quote == "'" || quote == "\"",
              let descrEnd = descrText.dropFirst().firstIndex(of: quote) else {
            throw TensorIOError(path, "header has no dtype ('descr')")
        }
        let descr = String(descrText[descrText.index(after: descrText.startIndex)..<descrEnd])
        let order = descr.first.map { "<=|>".contains($0) } == true ? descr.first! : "="
        let code = descr.first.map { "<=|>".contains($0) } == true ? String(descr.dropFirst()) : descr
        guard order != ">" else { throw TensorIOError(path, "dtype \(descr) is big-endian; only little-endian data is read") }
        guard let dtype = code == "bfloat16" ? .bfloat16 : DType(rawValue: code) else {
            throw TensorIOError(path, "unsupported dtype \(descr) (expected float32, float16, bfloat16 (<V2), float64, int32 or int64)")
        }
        guard let fortran = value(of: "fortran_order") else { throw TensorIOError(path, "header has no 'fortran_order'") }
        if fortran.hasPrefix("True") { throw TensorIOError(path, "array is in Fortran order; save it in C order (np.ascontiguousarray)") }
        guard fortran.hasPrefix("False") else { throw TensorIOError(path, "header has a malformed 'fortran_order'") }
        guard let shapeText = value(of: "shape"), shapeText.first == "(", let close = shapeText.firstIndex(of: ")") else {
            throw TensorIOError(path, "header has no 'shape'")
        }
        var shape: [Int] = []
        for part in shapeText[shapeText.index(after: shapeText.startIndex)..<close].split(separator: ",") {
            let trimmed = part.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "L", with: "")
            if trimmed.isEmpty { continue }
            guard let dim = Int(trimmed), dim >= 0 else { throw TensorIOError(path, "header has a malformed shape") }
            shape.append(dim)
        }
        return Header(dtype: dtype, shape: shape, dataOffset: dataOffset)
    }
}

/// A shape as NumPy prints it: (2, 3) or (5,).
public func shapeText(_ shape: [Int]) -> String {
    "(" + shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? ",)" : ")")
}
