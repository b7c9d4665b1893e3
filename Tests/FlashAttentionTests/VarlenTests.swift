import AttentionReference
import FlashAttention
import Testing

// Variable-length batches (cu_seqlens offsets, packed lse of shape (heads, total_q)) must equal
// running each entry on its own, checked against the reference entry by entry. Entries include
// an empty query list, an empty key list and lengths across tile boundaries.

@Test(arguments: [false, true])
func varlenMatchesReferencePerEntry(causal: Bool) throws {
    let (heads, kvHeads, d) = (4, 2, 24)
    let queryOffsets = [0, 5, 5, 75, 140], keyOffsets = [0, 3, 70, 70, 200]
    let problem = try AttentionProblem(heads: heads, kvHeads: kvHeads, headDim: d, queryOffsets: queryOffsets,
                                       keyOffsets: keyOffsets, options: AttentionOptions(softmaxScale: 0.3, causal: causal))
    #expect(problem.packedLSE && problem.batch == 4)
    var normals = SeededNormals(seed: 77)
    let totalQ = queryOffsets.last!, totalK = keyOffsets.last!
    let x = Inputs(q: normals.next(totalQ * heads * d), k: normals.next(totalK * kvHeads * d),
                   v: normals.next(totalK * kvHeads * d), dO: normals.next(totalQ * heads * d))
    let (o, lse) = FlashAttention.forward(problem, q: x.q, k: x.k, v: x.v, threads: 2)
    let g = FlashAttention.backward(problem, q: x.q, k: x.k, v: x.v, o: o, lse: lse, dO: x.dO, threads: 2)

    for b in 0..<problem.batch {
        let rows = queryOffsets[b]..<queryOffsets[b + 1], keys = keyOffsets[b]..<keyOffsets[b + 1]
        let qSlice = rows.lowerBound * heads * d..<rows.upperBound * heads * d
        let kSlice = keys.lowerBound * kvHeads * d..<keys.upperBound * kvHeads * d
        let entry = Case(seqlenQ: rows.count, seqlenK: keys.count, heads: heads, kvHeads: kvHeads, headDim: d,
                         causal: causal, scale: 0.3)
        let expected = runReference(entry, Inputs(q: Array(x.q[qSlice]), k: Array(x.k[kSlice]),
                                                  v: Array(x.v[kSlice]), dO: Array(x.dO[qSlice])))
        // Packed lse: lse[h, queryOffsets[b] + i] holds the entry's lse[0, h, i].
        let entryLSE = (0..<heads).flatMap { h in rows.map { lse[h * totalQ + $0] } }
        let actual = Outputs(o: Array(o[qSlice]), lse: entryLSE, dQ: Array(g.dQ[qSlice]),
                             dK: Array(g.dK[kSlice]), dV: Array(g.dV[kSlice]))
        expectMatches(actual, expected, forward: forwardTolerance, backward: backwardTolerance)
    }
}
