import FlashAttentionCore

/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011), sixteen
/// counters at a time: a keyed bijection of a 128-bit counter, so the value for any counter can be
/// computed anywhere, in any order, by any thread or rank, and comes out the same.
enum Philox {
    typealias Words = SIMD16<UInt32>

    /// The four output words for counters (c0[lane], c1, c2, c3) under `key`.
    @inline(__always)
    static func generate(_ c0: Words, _ c1: UInt32, _ c2: UInt32, _ c3: UInt32, key: UInt64) -> (Words, Words, Words, Words) {
        var (x0, x1, x2, x3) = (c0, Words(repeating: c1), Words(repeating: c2), Words(repeating: c3))
        var k0 = UInt32(truncatingIfNeeded: key), k1 = UInt32(truncatingIfNeeded: key >> 32)
        for _ in 0..<10 {
            let (hi0, lo0) = multiplyFull(x0, 0xD251_1F53)
            let (hi1, lo1) = multiplyFull(x2, 0xCD9E_8D57)
            (x0, x1, x2, x3) = (hi1 ^ x1 ^ k0, lo1, hi0 ^ x3 ^ k1, lo0)
            k0 &+= 0x9E37_79B9
            k1 &+= 0xBB67_AE85
        }
        return (x0, x1, x2, x3)
    }

    /// The high and low halves of each lane's 64-bit product.
    @inline(__always) static func multiplyFull(_ x: Words, _ m: UInt32) -> (high: Words, low: Words) {
        let wide = SIMD16<UInt64>(truncatingIfNeeded: x) &* SIMD16<UInt64>(repeating: UInt64(m))
        return (Words(truncatingIfNeeded: wide &>> 32), Words(truncatingIfNeeded: wide))
    }
}
