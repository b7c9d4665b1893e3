import FlashAttention
import Testing

// The count check at the buffer entry points: a wrong count stops the process there (fatalError,
// which no test can survive), so the check itself is tested, on every buffer of both calls.

private func problem() throws -> AttentionProblem {
    try AttentionProblem(batch: 2, seqlenQ: 5, seqlenK: 3, heads: 4, kvHeads: 2, headDim: 8,
                         options: AttentionOptions(softmaxScale: 0.5))
}

@Test("buffers of the problem's sizes pass")
func rightCountsPass() throws {
    let p = try problem()
    let (q, k, lse) = (p.queryElements, p.keyElements, p.lseElements)
    #expect((q, k, lse) == (2 * 5 * 4 * 8, 2 * 3 * 2 * 8, 2 * 4 * 5))
    #expect(BufferCounts.forward(p, q: q, k: k, v: k, o: q, lse: lse).mismatch == nil)
    #expect(BufferCounts.backward(p, q: q, k: k, v: k, o: q, lse: lse, dO: q, dQ: q, dK: k, dV: k,
                                  keyGradients: .summedOverGroup).mismatch == nil)
    // Per query head, dK and dV hold a slot for each of the 4 heads rather than the 2 kv heads.
    #expect(BufferCounts.backward(p, q: q, k: k, v: k, o: q, lse: lse, dO: q, dQ: q, dK: 2 * k, dV: 2 * k,
                                  keyGradients: .perQueryHead).mismatch == nil)
}

@Test("each buffer one element short is named with its count", arguments: 0..<9)
func shortBufferIsNamed(index: Int) throws {
    let p = try problem()
    let (q, k, lse) = (p.queryElements, p.keyElements, p.lseElements)
    var counts = [q, k, k, q, lse, q, q, k, k]
    counts[index] -= 1
    let backward = BufferCounts.backward(p, q: counts[0], k: counts[1], v: counts[2], o: counts[3], lse: counts[4],
                                         dO: counts[5], dQ: counts[6], dK: counts[7], dV: counts[8], keyGradients: .summedOverGroup)
    let name = ["q", "k", "v", "o", "lse", "dO", "dQ", "dK", "dV"][index]
    #expect(backward.mismatch == "\(name): \(counts[index]) elements, but the problem needs \(counts[index] + 1)")
    if index < 5 {
        let forward = BufferCounts.forward(p, q: counts[0], k: counts[1], v: counts[2], o: counts[3], lse: counts[4])
        #expect(forward.mismatch == backward.mismatch)
    }
}

@Test("summed dK sized per query head is refused")
func gradientLayoutCounts() throws {
    let p = try problem()
    let (q, k, lse) = (p.queryElements, p.keyElements, p.lseElements)
    let counts = BufferCounts.backward(p, q: q, k: k, v: k, o: q, lse: lse, dO: q, dQ: q, dK: 2 * k, dV: 2 * k,
                                       keyGradients: .summedOverGroup)
    #expect(counts.mismatch == "dK: \(2 * k) elements, but the problem needs \(k)")
}
