import Foundation

/// Reproducible standard-normal floats (like torch.randn) for tests and benchmarks: SplitMix64
/// for the bits, Box–Muller for the shape. Its bits also serve as a seeded generator for
/// `random(in:using:)` (the readers' fuzzing).
public struct SeededNormals: RandomNumberGenerator {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// The stream of `seed` after `count` normals, reached without drawing them (each normal takes
    /// two draws, and a draw only adds a constant to the state): a rank draws its part of a
    /// tensor from the element's global index.
    public init(seed: UInt64, skipping count: Int) { state = seed &+ 2 &* UInt64(count) &* SeededNormals.gamma }

    public mutating func next(_ count: Int, scale: Float = 1) -> [Float] {
        (0..<count).map { _ in nextNormal() * scale }
    }

    mutating func nextNormal() -> Float {
        let u1 = Double(nextBits() >> 11 + 1) * 0x1p-53, u2 = Double(nextBits() >> 11) * 0x1p-53
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * .pi * u2))
    }

    public mutating func next() -> UInt64 { nextBits() }

    private static let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15

    mutating func nextBits() -> UInt64 {
        state &+= SeededNormals.gamma
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
