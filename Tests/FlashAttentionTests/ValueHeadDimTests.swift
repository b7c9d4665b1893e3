import AttentionReference
import FlashAttention
import Testing

// v with a head dim of its own (DeepSeek's MLA scores with 192 dims and carries 128): o, dO and
// dV are Dv wide, q, k, dQ and dK D wide, and every output matches the float64 reference, with V
// narrower and wider than K, head dims that are and are not whole vectors (the fused backward runs
// only for whole-vector dQ rows), GQA, causal and window masks, and variable-length batches.

private let valueHeadDimCases: [Case] = [
    Case(seqlenQ: 100, seqlenK: 150, heads: 4, kvHeads: 4, headDim: 192, valueHeadDim: 128, causal: true),
    Case(batch: 2, seqlenQ: 70, seqlenK: 90, heads: 4, kvHeads: 2, headDim: 32, valueHeadDim: 80),
    Case(seqlenQ: 130, seqlenK: 97, heads: 3, kvHeads: 1, headDim: 40, valueHeadDim: 7, causal: true),
    Case(seqlenQ: 90, seqlenK: 200, heads: 2, kvHeads: 1, headDim: 5, valueHeadDim: 64, windowLeft: 20, windowRight: 3),
    Case(seqlenQ: 33, seqlenK: 65, heads: 2, kvHeads: 2, headDim: 256, valueHeadDim: 1, causal: true),
]

@Test("o, lse, dQ, dK, dV match the reference when v has its own head dim", arguments: valueHeadDimCases)
func valueHeadDimMatchesReference(_ c: Case) throws {
    let x = c.inputs()
    let expected = runReference(c, x)
    for threads in [1, 3] {
        expectMatches(try runKernels(c, x, threads: threads), expected, forward: forwardTolerance, backward: backwardTolerance)
    }
}

@Test("outputs with their own value head dim are bitwise the same for any thread count", arguments: valueHeadDimCases)
func valueHeadDimIsThreadIndependent(_ c: Case) throws {
    let x = c.inputs()
    let one = try runKernels(c, x, threads: 1), five = try runKernels(c, x, threads: 5)
    for (a, b) in [(one.o, five.o), (one.lse, five.lse), (one.dQ, five.dQ), (one.dK, five.dK), (one.dV, five.dV)] {
        #expect(a.map(\.bitPattern) == b.map(\.bitPattern))
    }
}

@Test func valueHeadDimOutsideItsRangeIsRefused() {
    for dv in [0, 257] {
        #expect(throws: AttentionError.valueHeadDimOutOfRange(dv)) {
            try AttentionProblem(batch: 1, seqlenQ: 4, seqlenK: 4, heads: 1, kvHeads: 1, headDim: 8, valueHeadDim: dv,
                                 options: AttentionOptions(softmaxScale: 1))
        }
    }
}

@Test func forwardFlopsCountBothHeadDims() throws {
    let mla = try AttentionProblem(batch: 1, seqlenQ: 10, seqlenK: 20, heads: 2, kvHeads: 2, headDim: 192, valueHeadDim: 128,
                                   options: AttentionOptions(softmaxScale: 1, causal: true))
    #expect(mla.forwardFlops == 2 * 10 * 20 * 2 * (192 + 128) * 0.5)
    let same = try AttentionProblem(batch: 1, seqlenQ: 10, seqlenK: 20, heads: 2, kvHeads: 2, headDim: 64,
                                    options: AttentionOptions(softmaxScale: 1))
    #expect(same.forwardFlops == 4 * 10 * 20 * 2 * 64)
}
