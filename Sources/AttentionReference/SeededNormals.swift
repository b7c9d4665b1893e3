import Foundation

/// Reproducible standard-normal floats (like torch.randn) for tests and benchmarks: SplitMix64
/// for the bits, Box–Muller for the shape. Its bits also serve as a seeded generator for
/// `random(in:using:)` (the readers' fuzzing).
public struct SeededNormals: RandomNumberGenerator {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next(_ count: Int, scale: Float = 1) -> [Float] {
        (0..<count).map { _ in nextNormal() * scale }
    }

    mutating func nextNormal() -> Float {
        let u1 = Double(nextBits() >> 11 + 1) * 0x1p-53, u2 = Double(nextBits() >> 11) * 0x1p-53
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * .pi * u2))
    }

    public mutating func next() -> UInt64 { nextBits() }

    mutating func nextBits() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
