import FlashAttention
import Testing

// Attention sinks against the float64 reference: o, lse (which includes the sink), the gradients
// and dsinks; rows that see no key get exactly O = 0, lse = sink and zero gradients; dsinks are
// bitwise the same for any thread count; the sinks are checked where the problem is made.

private let sinkCases: [Case] = [
    // GQA, causal, two batch entries, sinks of both signs and one that dominates its rows.
    Case(batch: 2, seqlenQ: 130, seqlenK: 130, heads: 4, kvHeads: 2, headDim: 64, causal: true, seed: 21,
         sinks: [0.5, -2, 6, 0]),
    // Window with Nq < Nk, a head dim that is not a whole vector.
    Case(seqlenQ: 70, seqlenK: 150, heads: 2, kvHeads: 1, headDim: 40, windowLeft: 20, windowRight: 5, seed: 22,
         sinks: [1.25, -0.5]),
    // With softcap, ALiBi and dropout: the sink sits beside the modified scores, untouched by them.
    Case(batch: 2, seqlenQ: 50, seqlenK: 60, heads: 2, kvHeads: 2, headDim: 16, causal: true, seed: 23, softcap: 3,
         alibiSlopes: AlibiSlopes(values: [0.5, 0.25], heads: 2), dropout: Dropout(probability: 0.2, seed: 5),
         sinks: [2, -1]),
]

@Test("sinks: o, lse, gradients and dsinks match the float64 reference", arguments: sinkCases)
func sinksMatchReference(_ c: Case) throws {
    let x = c.inputs()
    expectMatches(try runKernels(c, x), runReference(c, x), forward: forwardTolerance, backward: backwardTolerance)
}

@Test("sinks: a row that sees no key has O = 0, lse = its sink, zero gradients")
func sinkOnlyRows() throws {
    // Causal with Nq > Nk: rows 0..<40 see no key.
    let c = Case(batch: 2, seqlenQ: 70, seqlenK: 30, heads: 2, kvHeads: 1, headDim: 16, causal: true, seed: 24,
                 sinks: [-3, 4.5])
    let x = c.inputs()
    let out = try runKernels(c, x)
    for tensor in [out.o, out.lse, out.dQ, out.dK, out.dV, out.dSinks] { #expect(!tensor.contains { $0.isNaN }) }
    for b in 0..<c.batch {
        for h in 0..<c.heads {
            for i in 0..<40 {
                #expect(out.lse[(b * c.heads + h) * c.seqlenQ + i] == c.sinks![h])
                let base = ((b * c.seqlenQ + i) * c.heads + h) * c.headDim
                #expect(out.o[base..<base + c.headDim].allSatisfy { $0 == 0 })
                #expect(out.dQ[base..<base + c.headDim].allSatisfy { $0 == 0 })
            }
        }
    }
    expectMatches(out, runReference(c, x), forward: forwardTolerance, backward: backwardTolerance)
}

@Test("sinks: no keys at all, every row is its sink and dsinks is 0")
func sinksWithoutKeys() throws {
    let c = Case(seqlenQ: 20, seqlenK: 0, heads: 2, kvHeads: 2, headDim: 8, sinks: [1, -1])
    let out = try runKernels(c, c.inputs())
    #expect(out.o.allSatisfy { $0 == 0 } && out.dQ.allSatisfy { $0 == 0 })
    #expect(out.lse == (0..<2).flatMap { h in [Float](repeating: c.sinks![h], count: 20) })
    #expect(out.dSinks == [0, 0])
}

@Test("sinks: outputs and dsinks are bitwise the same for 1, 2 and 5 threads")
func sinksThreadIndependent() throws {
    let c = sinkCases[0], x = c.inputs()
    let one = try runKernels(c, x, threads: 1)
    for threads in [2, 5] {
        let other = try runKernels(c, x, threads: threads)
        #expect(other.o == one.o && other.lse == one.lse && other.dQ == one.dQ && other.dK == one.dK && other.dV == one.dV)
        #expect(other.dSinks.map(\.bitPattern) == one.dSinks.map(\.bitPattern))
    }
}

@Test("sinks: the problem refuses a count other than heads, and non-finite values")
func sinksValidated() {
    func problem(_ sinks: [Float]) throws(AttentionError) -> AttentionProblem {
        try AttentionProblem(batch: 1, seqlenQ: 4, seqlenK: 4, heads: 2, kvHeads: 1, headDim: 8,
                             options: AttentionOptions(softmaxScale: 1, sinks: sinks))
    }
    #expect(throws: AttentionError.sinkCount(values: 3, heads: 2)) { try problem([0, 1, 2]) }
    #expect(throws: AttentionError.sinksNotFinite) { try problem([0, .infinity]) }
    #expect(throws: AttentionError.sinksNotFinite) { try problem([.nan, 0]) }
    #expect(throws: Never.self) { try problem([0, 1]) }
}
