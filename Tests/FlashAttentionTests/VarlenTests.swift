import AttentionReference
import FlashAttention
import Testing

// Variable-length batches (cu_seqlens offsets, packed lse of shape (heads, total_q)) must equal
// running each entry on its own, checked against the reference entry by entry. Entries include
// an empty query list, an empty key list and lengths across tile boundaries; v with q's head dim
// and with one of its own.

@Test(arguments: [false, true], [24, 40])
func varlenMatchesReferencePerEntry(causal: Bool, valueHeadDim dv: Int) throws {
    let (heads, kvHeads, d) = (4, 2, 24)
    let queryOffsets = [0, 5, 5, 75, 140], keyOffsets = [0, 3, 70, 70, 200]
    let problem = try AttentionProblem(heads: heads, kvHeads: kvHeads, headDim: d, valueHeadDim: dv, queryOffsets: queryOffsets,
                                       keyOffsets: keyOffsets, options: AttentionOptions(softmaxScale: 0.3, causal: causal))
    #expect(problem.packedLSE && problem.batch == 4)
    var normals = SeededNormals(seed: 77)
    let totalQ = queryOffsets.last!, totalK = keyOffsets.last!
    let x = Inputs(q: normals.next(totalQ * heads * d), k: normals.next(totalK * kvHeads * d),
                   v: normals.next(totalK * kvHeads * dv), dO: normals.next(totalQ * heads * dv))
    let (o, lse) = FlashAttention.forward(problem, q: x.q, k: x.k, v: x.v, threads: 2)
    let g = FlashAttention.backward(problem, q: x.q, k: x.k, v: x.v, o: o, lse: lse, dO: x.dO, threads: 2)
    #expect(o.count == totalQ * heads * dv && g.dV.count == totalK * kvHeads * dv && g.dK.count == totalK * kvHeads * d)

    for b in 0..<problem.batch {
        let rows = queryOffsets[b]..<queryOffsets[b + 1], keys = keyOffsets[b]..<keyOffsets[b + 1]
        func part(_ range: Range<Int>, _ perRow: Int) -> Range<Int> { range.lowerBound * perRow..<range.upperBound * perRow }
        let entry = Case(seqlenQ: rows.count, seqlenK: keys.count, heads: heads, kvHeads: kvHeads, headDim: d, valueHeadDim: dv,
                         causal: causal, scale: 0.3)
        let expected = runReference(entry, Inputs(q: Array(x.q[part(rows, heads * d)]), k: Array(x.k[part(keys, kvHeads * d)]),
                                                  v: Array(x.v[part(keys, kvHeads * dv)]), dO: Array(x.dO[part(rows, heads * dv)])))
        // Packed lse: lse[h, queryOffsets[b] + i] holds the entry's lse[0, h, i].
        let entryLSE = (0..<heads).flatMap { h in rows.map { lse[h * totalQ + $0] } }
        let actual = Outputs(o: Array(o[part(rows, heads * dv)]), lse: entryLSE, dQ: Array(g.dQ[part(rows, heads * d)]),
                             dK: Array(g.dK[part(keys, kvHeads * d)]), dV: Array(g.dV[part(keys, kvHeads * dv)]))
        expectMatches(actual, expected, forward: forwardTolerance, backward: backwardTolerance)
    }
}
