import Foundation

/// The element types of a stored tensor, in an .npy or a safetensors file alike (each format names
/// them its own way): floats are converted to float32 on load and float outputs rounded to
/// theirs; the integers are offsets (cu_seqlens).
public enum ElementType: Sendable, CaseIterable {
    case float32, float16, bfloat16, float64, int32, int64

    public var byteCount: Int {
        switch self {
        case .float16, .bfloat16: 2
        case .float32, .int32: 4
        case .float64, .int64: 8
        }
    }

    public var isFloat: Bool { self != .int32 && self != .int64 }

    /// Converts `target.count` little-endian elements of this float type to float32.
    func convert(_ data: UnsafeRawBufferPointer, into target: UnsafeMutableBufferPointer<Float>) {
        switch self {
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
            preconditionFailure("integer elements converted as float")
        }
    }

    /// `values` as little-endian elements of this float type, rounded to nearest even.
    public func encode(_ values: UnsafeBufferPointer<Float>) -> Data {
        switch self {
        case .float32: Data(buffer: values)
        case .float16: values.map { Float16($0).bitPattern }.withUnsafeBufferPointer { Data(buffer: $0) }
        case .bfloat16: values.map(Self.bfloat16Bits).withUnsafeBufferPointer { Data(buffer: $0) }
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
}
