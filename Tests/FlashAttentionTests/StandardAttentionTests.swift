import FlashAttention
import Testing

// The textbook algorithm `bench --algorithm standard` times, against the float64 reference on
// small shapes with every mask it takes and GQA, with the same tolerances as the tiled kernels;
// and thread-count independence, as the bench compares it with those kernels on any thread count.

private let standardCases: [Case] = [
    Case(seqlenQ: 1, seqlenK: 1, headDim: 1),
    Case(seqlenQ: 70, seqlenK: 70, heads: 2, kvHeads: 1, headDim: 64, causal: true),
    Case(batch: 2, seqlenQ: 17, seqlenK: 100, heads: 4, kvHeads: 2, headDim: 33, causal: true),
    Case(seqlenQ: 100, seqlenK: 17, heads: 3, kvHeads: 3, headDim: 40, causal: true),
    Case(seqlenQ: 65, seqlenK: 130, heads: 4, kvHeads: 1, headDim: 128, windowLeft: 16, windowRight: 4),
    Case(batch: 3, seqlenQ: 63, seqlenK: 63, heads: 2, kvHeads: 2, headDim: 8, causal: true, windowLeft: 5, windowRight: -1, scale: 0.7),
    // v of its own head dim, narrower and wider than q's and k's.
    Case(seqlenQ: 70, seqlenK: 90, heads: 4, kvHeads: 2, headDim: 48, valueHeadDim: 20, causal: true),
    Case(seqlenQ: 40, seqlenK: 33, heads: 2, kvHeads: 1, headDim: 16, valueHeadDim: 72),
]

private func runStandard(_ c: Case, _ x: Inputs, threads: Int) throws -> Outputs<Float> {
    let problem = try c.problem()
    var o = [Float](repeating: .nan, count: problem.outputElements), lse = [Float](repeating: .nan, count: problem.lseElements)
    var p = [Float](repeating: .nan, count: StandardAttention.probabilityElements(problem))
    StandardAttention.forward(problem, q: x.q, k: x.k, v: x.v, o: &o, lse: &lse, p: &p, threads: threads)
    var dQ = [Float](repeating: .nan, count: problem.queryElements)
    var dK = [Float](repeating: .nan, count: problem.keyElements), dV = [Float](repeating: .nan, count: problem.valueElements)
    StandardAttention.backward(problem, q: x.q, k: x.k, v: x.v, o: o, dO: x.dO, p: p, dQ: &dQ, dK: &dK, dV: &dV, threads: threads)
    return Outputs(o: o, lse: lse, dQ: dQ, dK: dK, dV: dV)
}

@Test("standard attention matches the float64 reference", arguments: standardCases)
func standardMatchesReference(_ c: Case) throws {
    let x = c.inputs()
    expectMatches(try runStandard(c, x, threads: 2), runReference(c, x), forward: forwardTolerance, backward: backwardTolerance)
}

@Test func standardIsThreadIndependent() throws {
    let c = standardCases[2], x = c.inputs()
    let one = try runStandard(c, x, threads: 1), three = try runStandard(c, x, threads: 3)
    #expect(one.o == three.o && one.lse == three.lse && one.dQ == three.dQ && one.dK == three.dK && one.dV == three.dV)
}

@Test("the forward's tile override (bench --block-q/--block-k) keeps the results within the reference tolerance",
      arguments: [(16, 16), (32, 112), (nil, 256)] as [(Int?, Int)])
func forwardTileOverride(_ rows: Int?, _ keys: Int) throws {
    let c = Case(batch: 2, seqlenQ: 130, seqlenK: 77, heads: 4, kvHeads: 2, headDim: 40, causal: true), x = c.inputs()
    var configuration = KernelConfiguration.current
    (configuration.tiling.forwardRows, configuration.tiling.keyColumns) = (rows, keys)
    let (o, lse) = FlashAttention.forward(try c.problem(), q: x.q, k: x.k, v: x.v, threads: 2, configuration: configuration)
    let expected = runReference(c, x)
    expectClose(o, expected.o, tolerance: forwardTolerance, "o")
    expectClose(lse, expected.lse, tolerance: forwardTolerance, "lse")
}

@Test func forwardTileOverrideIsValidated() {
    for (rows, keys) in [(20, 64), (0, 64), (64, 0), (64, 24)] {
        var tiling = KernelConfiguration.current.tiling
        (tiling.forwardRows, tiling.keyColumns) = (rows, keys)
        #expect(tiling.problem != nil, "rows \(rows), keys \(keys)")
    }
}
