import Foundation

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320): the checksum of zlib's `crc32` and
/// Python's `zlib.crc32`, so a reader can check the manifest's values with the standard library.
/// Slicing by 8: eight tables let each step fold in eight bytes at once.
public struct CRC32 {
    public private(set) var value: UInt32 = 0

    public init() {}

    private static let tables: [[UInt32]] = {
        var tables = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
            tables[0][byte] = crc
        }
        for byte in 0..<256 {
            for k in 1..<8 { tables[k][byte] = (tables[k - 1][byte] >> 8) ^ tables[0][Int(tables[k - 1][byte] & 0xff)] }
        }
        return tables
    }()

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var crc = ~value
        Self.tables.withUnsafeBufferPointer { t in
            let (t0, t1, t2, t3) = (t[0], t[1], t[2], t[3])
            let (t4, t5, t6, t7) = (t[4], t[5], t[6], t[7])
            var i = 0
            while i + 8 <= bytes.count {
                let low = crc ^ bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self).littleEndian
                let high = bytes.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self).littleEndian
                crc = t7[Int(low & 0xff)] ^ t6[Int((low >> 8) & 0xff)] ^ t5[Int((low >> 16) & 0xff)] ^ t4[Int(low >> 24)]
                    ^ t3[Int(high & 0xff)] ^ t2[Int((high >> 8) & 0xff)] ^ t1[Int((high >> 16) & 0xff)] ^ t0[Int(high >> 24)]
                i += 8
            }
            while i < bytes.count {
                crc = (crc >> 8) ^ t0[Int((crc ^ UInt32(bytes[i])) & 0xff)]
                i += 1
            }
        }
        value = ~crc
    }

    /// The CRC-32 of the first `size` bytes of the open file, read a mebibyte at a time; an
    /// error names `label`.
    static func of(_ descriptor: Int32, size: Int, label: String) throws(TensorIOError) -> UInt32 {
        var checksum = CRC32()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset = 0
        while offset < size {
            let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, min($0.count, size - offset), off_t(offset)) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw TensorIOError(label, "cannot be read back (\(count == 0 ? "shorter than expected" : systemError()))") }
            buffer.withUnsafeBytes { checksum.update(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
            offset += count
        }
        return checksum.value
    }
}
