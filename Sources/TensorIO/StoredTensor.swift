import Foundation
import TensorSlices

/// A tensor stored raw, C order, little-endian, at a known offset of a file: an .npy file, or one
/// entry of a safetensors file. Reading a slice touches only that slice's bytes (`pread`), so a
/// rank that owns a few heads or rows of a large tensor never loads the rest.
public struct StoredTensor: Sendable {
    public let path: String
    /// How errors name it: the path of an .npy file, `FILE[name]` for a safetensors entry.
    public let label: String
    public let dtype: ElementType
    public let shape: [Int]
    public let dataOffset: Int

    /// The float array of an .npy file (header checked against the file's size).
    public static func npy(_ path: String) throws(TensorIOError) -> StoredTensor {
        let header = try Npy.readFloatHeader(path)
        return StoredTensor(path: path, label: path, dtype: header.dtype, shape: header.shape, dataOffset: header.dataOffset)
    }

    /// The whole tensor as float32.
    public func readFloats() throws(TensorIOError) -> [Float] { try readFloats(slice: .whole(shape.isEmpty ? [1] : shape)) }

    /// `slice` of the tensor as float32; `slice.shape` must be the tensor's shape.
    public func readFloats(slice: AxisSlice) throws(TensorIOError) -> [Float] {
        precondition(shape == slice.shape || (shape.isEmpty && slice.elementCount == 1),
                     "slice of \(shapeText(slice.shape)) read from a \(shapeText(shape)) tensor")
        let descriptor = try openForReading(path)
        defer { close(descriptor) }
        let width = dtype.byteCount
        let run = slice.range.count * slice.inner, stride = slice.shape[slice.axis] * slice.inner
        var values = [Float](repeating: 0, count: slice.elementCount)
        // float32 lands in place; other dtypes go through one run of raw bytes at a time.
        var bytes = [UInt8](repeating: 0, count: dtype == .float32 ? 0 : run * width)
        for o in 0..<slice.outer where run > 0 {
            let offset = dataOffset + (o * stride + slice.range.lowerBound * slice.inner) * width
            let failure = values.withUnsafeMutableBufferPointer { target in
                let part = UnsafeMutableBufferPointer(rebasing: target[o * run..<(o + 1) * run])
                if dtype == .float32 { return readFully(descriptor, into: UnsafeMutableRawBufferPointer(part), at: offset, path: path) }
                return bytes.withUnsafeMutableBytes { raw in
                    let failure = readFully(descriptor, into: raw, at: offset, path: path)
                    if failure == nil { dtype.convert(UnsafeRawBufferPointer(raw), into: part) }
                    return failure
                }
            }
            if let failure { throw failure }
        }
        return values
    }
}

/// The size of the regular file at `path`.
func fileSize(_ path: String) throws(TensorIOError) -> Int {
    var info = stat()
    guard FilePath.withSystemPath(path, { stat($0, &info) }) == 0 else {
        throw TensorIOError(path, errno == ENOENT ? "no such file" : "cannot be read (\(systemError()))")
    }
    switch info.st_mode & S_IFMT {
    case S_IFREG: return Int(info.st_size)
    case S_IFDIR: throw TensorIOError(path, "is a directory, expected a file")
    case S_IFIFO: throw TensorIOError(path, "is a FIFO (named pipe), expected a regular file")
    default: throw TensorIOError(path, "is a device or socket, expected a regular file")
    }
}

/// `count` bytes of `path` from `offset` (which the caller knows to be inside the file).
func readBytes(_ path: String, count: Int, at offset: Int) throws(TensorIOError) -> [UInt8] {
    let descriptor = try openForReading(path)
    defer { close(descriptor) }
    var bytes = [UInt8](repeating: 0, count: count)
    if let failure = bytes.withUnsafeMutableBytes({ readFully(descriptor, into: $0, at: offset, path: path) }) { throw failure }
    return bytes
}

private func openForReading(_ path: String) throws(TensorIOError) -> Int32 {
    let descriptor = FilePath.withSystemPath(path) { open($0, O_RDONLY) }
    guard descriptor >= 0 else { throw TensorIOError(path, "cannot be opened (\(systemError()))") }
    return descriptor
}

/// Fills `buffer` from `offset`; the error, if any, is returned so callers inside buffer closures
/// (which cannot throw a typed error) can throw it after.
private func readFully(_ descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int,
                       path: String) -> TensorIOError? {
    var done = 0
    while done < buffer.count {
        let count = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else {
            return TensorIOError(path, count == 0 ? "truncated while reading" : "cannot be read (\(systemError()))")
        }
        done += count
    }
    return nil
}
