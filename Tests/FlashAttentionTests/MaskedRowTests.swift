import FlashAttention
import Testing

// Rows that see no key must give exactly O = 0, lse = −∞ and dQ = 0 with no NaN anywhere, and
// the visible rows around them must still match the reference. Outputs come from `runKernels`,
// whose buffers start as NaN, so an unwritten element cannot pass as a zero.

/// Cases with empty rows, and which query rows (of every batch entry and head) are empty.
private let partlyMasked: [(Case, Range<Int>)] = [
    // Causal, bottom-right aligned: with Nq > Nk rows i < Nq − Nk see nothing.
    (Case(batch: 2, seqlenQ: 70, seqlenK: 5, heads: 2, kvHeads: 1, headDim: 8, causal: true), 0..<65),
    // Whole 64-row blocks empty, then a block that mixes empty and visible rows.
    (Case(seqlenQ: 150, seqlenK: 20, heads: 3, kvHeads: 3, headDim: 33, causal: true), 0..<130),
    // Window (3, 2) with shift −70: row i sees keys [i − 73, i − 68], so rows below 68 see none.
    (Case(seqlenQ: 80, seqlenK: 10, heads: 4, kvHeads: 2, headDim: 16, windowLeft: 3, windowRight: 2), 0..<68),
]

@Test("fully masked rows give O = 0, lse = −∞, dQ = 0", arguments: partlyMasked)
func fullyMaskedRows(_ c: Case, empty: Range<Int>) throws {
    let x = c.inputs()
    let out = try runKernels(c, x)
    for tensor in [out.o, out.lse, out.dQ, out.dK, out.dV] { #expect(!tensor.contains { $0.isNaN }) }
    for b in 0..<c.batch {
        for h in 0..<c.heads {
            for i in empty {
                #expect(out.lse[(b * c.heads + h) * c.seqlenQ + i] == -.infinity)
                let base = ((b * c.seqlenQ + i) * c.heads + h) * c.headDim
                #expect(out.o[base..<base + c.headDim].allSatisfy { $0 == 0 })
                #expect(out.dQ[base..<base + c.headDim].allSatisfy { $0 == 0 })
            }
            // The first visible row really is visible (so the empty range above is exact).
            #expect(out.lse[(b * c.heads + h) * c.seqlenQ + empty.upperBound].isFinite)
        }
    }
    expectMatches(out, runReference(c, x), forward: forwardTolerance, backward: backwardTolerance)
}

/// No keys at all: every row is empty; dK and dV have no elements.
@Test func noKeys() throws {
    let c = Case(batch: 2, seqlenQ: 70, seqlenK: 0, heads: 2, kvHeads: 1, headDim: 8, causal: true)
    let out = try runKernels(c, c.inputs())
    #expect(out.o.count == 2 * 70 * 2 * 8 && out.o.allSatisfy { $0 == 0 })
    #expect(out.lse.count == 2 * 2 * 70 && out.lse.allSatisfy { $0 == -.infinity })
    #expect(out.dQ.allSatisfy { $0 == 0 })
    #expect(out.dK.isEmpty && out.dV.isEmpty)
}

/// No queries: o, lse and dQ are empty, and no query reads any key, so dK = dV = 0 exactly.
@Test(arguments: [false, true])
func noQueries(causal: Bool) throws {
    let c = Case(seqlenQ: 0, seqlenK: 70, heads: 2, kvHeads: 2, headDim: 8, causal: causal)
    let out = try runKernels(c, c.inputs())
    #expect(out.o.isEmpty && out.lse.isEmpty && out.dQ.isEmpty)
    #expect(out.dK.count == 70 * 2 * 8 && out.dK.allSatisfy { $0 == 0 })
    #expect(out.dV.count == 70 * 2 * 8 && out.dV.allSatisfy { $0 == 0 })
}

/// Both empty, through the array entry points too.
@Test func noQueriesNoKeys() throws {
    let problem = try AttentionProblem(batch: 1, seqlenQ: 0, seqlenK: 0, heads: 1, kvHeads: 1, headDim: 4,
                                       options: AttentionOptions(softmaxScale: 1))
    let (o, lse) = FlashAttention.forward(problem, q: [], k: [], v: [], threads: 2)
    let grads = FlashAttention.backward(problem, q: [], k: [], v: [], o: o, lse: lse, dO: [], threads: 2)
    #expect(o.isEmpty && lse.isEmpty && grads.dQ.isEmpty && grads.dK.isEmpty && grads.dV.isEmpty)
}
