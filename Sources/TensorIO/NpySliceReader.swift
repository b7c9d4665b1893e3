import Foundation

extension Npy {
    /// Reads one slice of a floating-point array as float32 with `pread`, touching only the bytes
    /// of the slice: a rank that owns a few heads or rows of a large tensor never loads the rest.
    /// `slice.shape` must be the file's shape (checked by the caller against `readFloatHeader`).
    public static func readFloats(_ path: String, slice: AxisSlice) throws(TensorIOError) -> [Float] {
        let header = try readFloatHeader(path)
        precondition(header.shape == slice.shape, "slice of \(shapeText(slice.shape)) read from a \(shapeText(header.shape)) file")
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { throw TensorIOError(path, "cannot be opened (\(String(cString: strerror(errno))))") }
        defer { close(descriptor) }

        let width = header.dtype.byteCount
        let run = slice.range.count * slice.inner, stride = slice.shape[slice.axis] * slice.inner
        var values = [Float](repeating: 0, count: slice.elementCount)
        var bytes = [UInt8](repeating: 0, count: run * width)
        for o in 0..<slice.outer where run > 0 {
            let offset = header.dataOffset + (o * stride + slice.range.lowerBound * slice.inner) * width
            try readFully(descriptor, into: &bytes, at: offset, path: path)
            bytes.withUnsafeBytes { raw in
                values.withUnsafeMutableBufferPointer { target in
                    convert(raw, dtype: header.dtype,
                            into: UnsafeMutableBufferPointer(rebasing: target[o * run..<(o + 1) * run]))
                }
            }
        }
        return values
    }

    private static func readFully(_ descriptor: Int32, into bytes: inout [UInt8], at offset: Int,
                                  path: String) throws(TensorIOError) {
        var done = 0
        while done < bytes.count {
            let count = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress! + done, $0.count - done, off_t(offset + done)) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                throw TensorIOError(path, count == 0 ? "truncated while reading" : "cannot be read (\(String(cString: strerror(errno))))")
            }
            done += count
        }
    }
}
