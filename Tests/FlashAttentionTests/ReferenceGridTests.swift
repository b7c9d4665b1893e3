import FlashAttention
import Testing

// Forward and backward against the float64 reference over a sampled grid of shapes, masks and
// GQA ratios, plus the corners named explicitly. Tolerances are relative to max(1, max |ref|):
// float32 with D ≤ 256 and N ≤ 200 measured at most 1.1e-6 on o/lse and 1.3e-6 on dQ/dK/dV, so
// 1e-5 / 2e-5 leave a margin near 10× while an off-by-one mask or a wrong scale (errors of
// order 1e-2 and up) still fails; `toleranceCatchesOffByOneMask` proves that.

let forwardTolerance = 1e-5
let backwardTolerance = 2e-5

/// Masks exercised: (causal, windowLeft, windowRight).
private let masks: [(Bool, Int, Int)] = [
    (false, -1, -1), (true, -1, -1), (false, 8, 0), (false, 16, 4), (false, -1, 3), (false, 5, -1),
    (true, 16, 4), (true, 5, -1),
]

/// Corners named by the brief: single rows/keys, D at both ends, causal with Nq ≠ Nk both ways,
/// lengths one either side of the 64-wide tiles, and every GQA ratio.
private let corners: [Case] = [
    Case(seqlenQ: 1, seqlenK: 1, headDim: 1),
    Case(seqlenQ: 1, seqlenK: 1, headDim: 1, causal: true),
    Case(seqlenQ: 1, seqlenK: 200, heads: 2, kvHeads: 2, headDim: 64, causal: true),
    Case(seqlenQ: 200, seqlenK: 1, heads: 2, kvHeads: 1, headDim: 8, causal: true),
    Case(seqlenQ: 17, seqlenK: 128, headDim: 33, causal: true),
    Case(seqlenQ: 128, seqlenK: 17, heads: 4, kvHeads: 1, headDim: 33, causal: true),
    Case(seqlenQ: 65, seqlenK: 63, heads: 4, kvHeads: 1, headDim: 256),
    Case(seqlenQ: 64, seqlenK: 65, headDim: 256, causal: true),
    Case(seqlenQ: 64, seqlenK: 65, heads: 2, kvHeads: 1, headDim: 1, windowLeft: 8, windowRight: 0),
    Case(batch: 3, seqlenQ: 63, seqlenK: 63, heads: 6, kvHeads: 3, headDim: 33, causal: true,
         windowLeft: 16, windowRight: 4),
    Case(seqlenQ: 200, seqlenK: 200, heads: 4, kvHeads: 1, headDim: 8, windowLeft: 5, windowRight: -1),
    Case(seqlenQ: 65, seqlenK: 64, heads: 6, kvHeads: 6, headDim: 8, windowLeft: -1, windowRight: 3),
    Case(batch: 2, seqlenQ: 2, seqlenK: 17, heads: 2, kvHeads: 1, headDim: 128, causal: true, scale: 0.7),
]

/// 40 cases drawn from the full grid with a fixed seed, skipping the few whose reference would be
/// slow (B·H·Nq·Nk·D above 40M) so that the suite stays fast.
private let sampled: [Case] = {
    let lengths = [1, 2, 17, 63, 64, 65, 128, 200], dims = [1, 8, 33, 64, 128, 256]
    var random = SplitMix(state: 2024)
    var cases: [Case] = []
    while cases.count < 40 {
        let ratio = [1, 2, 4][random.below(3)]
        let heads = ratio == 4 ? 4 : ratio * (1 + random.below(6 / ratio))
        let mask = masks[random.below(masks.count)]
        let c = Case(batch: 1 + random.below(3), seqlenQ: lengths[random.below(8)], seqlenK: lengths[random.below(8)],
                     heads: heads, kvHeads: heads / ratio, headDim: dims[random.below(6)],
                     causal: mask.0, windowLeft: mask.1, windowRight: mask.2,
                     seed: UInt64(cases.count + 100))
        if c.batch * c.heads * c.seqlenQ * c.seqlenK * c.headDim <= 40_000_000 { cases.append(c) }
    }
    return cases
}()

@Test("kernels match the float64 reference", arguments: corners + sampled)
func matchesReference(_ c: Case) throws {
    let x = c.inputs()
    expectMatches(try runKernels(c, x), runReference(c, x), forward: forwardTolerance, backward: backwardTolerance)
}

/// The tolerances above must be tight enough to see a real bug: shifting the window by one key,
/// or dropping the softmax scale, in the reference has to break them.
@Test func toleranceCatchesOffByOneMask() throws {
    let c = Case(seqlenQ: 70, seqlenK: 70, heads: 2, kvHeads: 1, headDim: 64, causal: true, windowLeft: 16, windowRight: 0)
    let x = c.inputs()
    let actual = try runKernels(c, x)
    var shifted = c
    shifted.windowLeft = 15
    var unscaled = c
    unscaled.scale = 1
    for wrong in [shifted, unscaled] {
        let expected = runReference(wrong, x)
        #expect(maxAbsDifference(actual.o, expected.o) / magnitude(expected.o) > 10 * forwardTolerance)
        #expect(maxAbsDifference(actual.dK, expected.dK) / magnitude(expected.dK) > 10 * backwardTolerance)
    }
}

/// SplitMix64, for drawing the grid sample reproducibly.
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}
