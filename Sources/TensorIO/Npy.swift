import Foundation
import TensorSlices

/// NumPy's .npy format, versions 1 to 3: a magic string, a version, a little-endian header length,
/// a Python-literal dict header (descr, fortran_order, shape), then the raw C-order data.
public enum Npy {
    /// NumPy's type code of each element type. bfloat16 has no NumPy type code: ml_dtypes'
    /// bfloat16 arrays are saved by `np.save` with descr `'<V2'` (a 2-byte void), which is what is
    /// written here and read as bfloat16 (as is `'|V2'`, and the descr `'bfloat16'` that a header
    /// written from `str(array.dtype)` holds).
    static func typeCode(_ type: ElementType) -> String {
        switch type {
        case .float32: "f4"
        case .float16: "f2"
        case .bfloat16: "V2"
        case .float64: "f8"
        case .int32: "i4"
        case .int64: "i8"
        }
    }

    public struct Header: Equatable, Sendable {
        public var dtype: ElementType
        public var shape: [Int]
        /// Bytes before the data.
        public var dataOffset: Int
        public var elementCount: Int { shape.reduce(1, *) }
    }

    /// Reads a floating-point array as float32 with its shape.
    public static func readFloats(_ path: String) throws(TensorIOError) -> (shape: [Int], values: [Float]) {
        let bytes = try contents(of: path)
        let header = try requireFloats(parseHeader(bytes, fileSize: bytes.count, path: path), path: path)
        var values = [Float](repeating: 0, count: header.elementCount)
        bytes.withUnsafeBytes { raw in
            values.withUnsafeMutableBufferPointer {
                header.dtype.convert(UnsafeRawBufferPointer(rebasing: raw[header.dataOffset...]), into: $0)
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
            throw TensorIOError(path, "dtype is \(typeCode(header.dtype)), expected a float array (f4, f2, f8 or bfloat16 <V2)")
        }
        return header
    }

    /// Reads an integer array (int32 or int64) with its shape.
    public static func readIntegers(_ path: String) throws(TensorIOError) -> (shape: [Int], values: [Int]) {
        let bytes = try contents(of: path)
        let header = try parseHeader(bytes, fileSize: bytes.count, path: path)
        guard header.dtype == .int32 || header.dtype == .int64 else {
            throw TensorIOError(path, "dtype is \(typeCode(header.dtype)), expected an integer array (i4 or i8)")
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

    /// The bytes of a .npy file holding `values` in C order, as float32 or rounded to `dtype`.
    public static func encode(_ values: UnsafeBufferPointer<Float>, shape: [Int], dtype: ElementType = .float32) -> Data {
        precondition(shape.reduce(1, *) == values.count, "shape does not match the element count")
        return headerBytes(dtype: dtype, shape: shape) + dtype.encode(values)
    }

    /// A version 1.0 header padded with spaces so the data starts on a 64-byte boundary.
    public static func headerBytes(dtype: ElementType, shape: [Int]) -> Data {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var dict = "{'descr': '<\(typeCode(dtype))', 'fortran_order': False, 'shape': (\(dims)), }"
        let unpadded = 10 + dict.utf8.count + 1
        dict += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        data.append(contentsOf: [UInt8(dict.utf8.count & 0xff), UInt8(dict.utf8.count >> 8)])
        data.append(contentsOf: Array(dict.utf8))
        return data
    }

    /// The header of a file, checked against the file's size; reads only the header's bytes.
    public static func readHeader(_ path: String) throws(TensorIOError) -> Header {
        let size = try fileSize(path)
        return try parseHeader(Data(try readBytes(path, count: min(size, 12 + maximumHeaderLength), at: 0)), fileSize: size, path: path)
    }

    /// NumPy refuses longer headers unless told otherwise (`max_header_size`); so does this
    /// reader, before reading one.
    public static let maximumHeaderLength = 10_000

    private static func contents(of path: String) throws(TensorIOError) -> Data {
        Data(try readBytes(path, count: try fileSize(path), at: 0))
    }

    /// The header at the start of `bytes` (the file's first bytes, at least its header when the
    /// file has one) of a file `fileSize` bytes long, read as NumPy's `read_array_header` does.
    static func parseHeader(_ bytes: Data, fileSize: Int, path: String) throws(TensorIOError) -> Header {
        let bytes = [UInt8](bytes)
        let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
        guard bytes.count >= 10, Array(bytes.prefix(6)) == magic else {
            throw TensorIOError(path, "not a .npy file (bad magic string)")
        }
        let major = bytes[6]
        let lengthBytes: Int
        switch major {
        case 1: lengthBytes = 2
        case 2, 3: lengthBytes = 4
        default: throw TensorIOError(path, "unsupported .npy version \(major)")
        }
        guard bytes.count >= 8 + lengthBytes else { throw TensorIOError(path, "truncated header") }
        let headerLength = (0..<lengthBytes).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
        guard headerLength <= maximumHeaderLength else {
            throw TensorIOError(path, "header is \(headerLength) bytes, more than the \(maximumHeaderLength) NumPy reads")
        }
        let dataOffset = 8 + lengthBytes + headerLength
        guard bytes.count >= dataOffset else { throw TensorIOError(path, "truncated header") }
        let raw = bytes[(8 + lengthBytes)..<dataOffset]
        // Versions 1 and 2 are latin-1, version 3 UTF-8.
        guard let text = major == 3 ? String(validating: raw, as: UTF8.self) : String(raw.map { Character(Unicode.Scalar($0)) }) else {
            throw TensorIOError(path, "header is not valid UTF-8")
        }
        let header = try parseDictionary(text, path: path, dataOffset: dataOffset, longSuffix: major < 3)
        // A shape whose size overflows would otherwise wrap to a small count that matches the file.
        let (expected, overflow) = header.shape.reduce((header.dtype.byteCount, false)) { size, dim in
            let product = size.0.multipliedReportingOverflow(by: dim)
            return (product.partialValue, size.1 || product.overflow)
        }
        guard !overflow else {
            throw TensorIOError(path, "shape \(shapeText(header.shape)) of \(typeCode(header.dtype)) needs more than 2^63 data bytes")
        }
        let found = fileSize - dataOffset
        guard found == expected else {
            throw TensorIOError(path, found < expected
                ? "truncated: shape \(shapeText(header.shape)) of \(typeCode(header.dtype)) needs \(expected) data bytes, file has \(found)"
                : "\(found - expected) bytes beyond the data of shape \(shapeText(header.shape))")
        }
        return header
    }

    /// The header's dict as NumPy takes it: exactly the keys descr, fortran_order and shape (the
    /// last of duplicates winning), a dtype string, a bool and a tuple of non-negative integers.
    private static func parseDictionary(_ text: String, path: String, dataOffset: Int, longSuffix: Bool) throws(TensorIOError) -> Header {
        let literal: PythonLiteral
        do { literal = try PythonLiteral.parse(text, longSuffix: longSuffix) } catch {
            throw TensorIOError(path, "header is not a Python literal (\(error.description))")
        }
        guard case .dict(let pairs) = literal else { throw TensorIOError(path, "header is not a dictionary") }
        var fields: [String: PythonLiteral] = [:]
        for (key, value) in pairs {
            guard case .string(let name) = key else { throw TensorIOError(path, "header has a key that is not a string") }
            fields[name] = value
        }
        let expected: Set = ["descr", "fortran_order", "shape"]
        guard Set(fields.keys) == expected else {
            let extra = Set(fields.keys).subtracting(expected).sorted(), missing = expected.subtracting(fields.keys).sorted()
            throw TensorIOError(path, "header keys must be exactly 'descr', 'fortran_order', 'shape'"
                                + (missing.isEmpty ? "" : "; missing \(missing.map { "'\($0)'" }.joined(separator: ", "))")
                                + (extra.isEmpty ? "" : "; extra \(extra.map { "'\($0)'" }.joined(separator: ", "))"))
        }
        guard case .string(let descr) = fields["descr"]! else {
            throw TensorIOError(path, "unsupported dtype (a structured dtype); expected float32, float16, bfloat16 (<V2), float64, int32 or int64")
        }
        let order = descr.first.map { "<=|>".contains($0) } == true ? descr.first! : "="
        let code = descr.first.map { "<=|>".contains($0) } == true ? String(descr.dropFirst()) : descr
        guard order != ">" else { throw TensorIOError(path, "dtype \(descr) is big-endian; only little-endian data is read") }
        guard let dtype = code == "bfloat16" ? .bfloat16 : ElementType.allCases.first(where: { typeCode($0) == code }) else {
            throw TensorIOError(path, "unsupported dtype \(descr) (expected float32, float16, bfloat16 (<V2), float64, int32 or int64)")
        }
        guard case .bool(let fortran) = fields["fortran_order"]! else { throw TensorIOError(path, "header has a malformed 'fortran_order'") }
        if fortran { throw TensorIOError(path, "array is in Fortran order; save it in C order (np.ascontiguousarray)") }
        guard case .tuple(let dims) = fields["shape"]! else { throw TensorIOError(path, "header has a malformed shape (not a tuple)") }
        var shape: [Int] = []
        for dim in dims {
            guard case .integer(let value) = dim, value >= 0 else { throw TensorIOError(path, "header has a malformed shape") }
            shape.append(value)
        }
        return Header(dtype: dtype, shape: shape, dataOffset: dataOffset)
    }
}
