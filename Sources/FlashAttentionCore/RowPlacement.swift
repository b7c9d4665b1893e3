/// Where the kernels find each row of the arrays they are given: the whole problem's flat
/// layouts, or the arrays of a rank that holds a window of the sequence.
///
/// A window is a range of rows along the sequence axis as the partitions see it: the same rows of
/// every batch entry of a fixed-length batch (arrays `(batch, window, heads, width)`, lse
/// `(batch, heads, window)`), or a range of the packed rows of a variable-length batch (arrays
/// `(window, heads, width)`, lse `(heads, window)`); the width is headDim for q, k and their
/// gradients, valueHeadDim for v, o and theirs. Row i of entry b sits at packed row
/// `base[b] + i` of such an array; for a window the base may be negative, as rows before the
/// window are never asked for.
public struct RowPlacement: Sendable {
    package let heads, kvHeads, headDim, valueHeadDim: Int
    package let queryBase, keyBase, lseBase: [Int]
    package let lseHeadStride: Int

    /// The arrays of `queries` and `keys` of the sequence axis (each within 0..<`sequenceLength`).
    public init(_ problem: AttentionProblem, queries: Range<Int>, keys: Range<Int>) {
        (heads, kvHeads, headDim, valueHeadDim) = (problem.heads, problem.kvHeads, problem.headDim, problem.valueHeadDim)
        let entries = 0..<problem.batch
        if problem.packedLSE {
            queryBase = entries.map { problem.queryOffsets[$0] - queries.lowerBound }
            keyBase = entries.map { problem.keyOffsets[$0] - keys.lowerBound }
            lseBase = queryBase
        } else {
            queryBase = entries.map { $0 * queries.count - queries.lowerBound }
            keyBase = entries.map { $0 * keys.count - keys.lowerBound }
            lseBase = entries.map { $0 * problem.heads * queries.count - queries.lowerBound }
        }
        lseHeadStride = queries.count
    }

    /// The whole problem's layouts.
    package static func whole(_ problem: AttentionProblem) -> RowPlacement {
        RowPlacement(problem, queries: 0..<problem.sequenceLength(keys: false), keys: 0..<problem.sequenceLength(keys: true))
    }

    /// The same query arrays with keys `keys` of the sequence axis in the key arrays.
    public func with(_ problem: AttentionProblem, keys: Range<Int>) -> RowPlacement {
        let keyPlacement = RowPlacement(problem, queries: 0..<0, keys: keys)
        return RowPlacement(heads: heads, kvHeads: kvHeads, headDim: headDim, valueHeadDim: valueHeadDim, queryBase: queryBase,
                            keyBase: keyPlacement.keyBase, lseBase: lseBase, lseHeadStride: lseHeadStride)
    }

    private init(heads: Int, kvHeads: Int, headDim: Int, valueHeadDim: Int, queryBase: [Int], keyBase: [Int], lseBase: [Int],
                 lseHeadStride: Int) {
        (self.heads, self.kvHeads, self.headDim, self.valueHeadDim) = (heads, kvHeads, headDim, valueHeadDim)
        (self.queryBase, self.keyBase, self.lseBase, self.lseHeadStride) = (queryBase, keyBase, lseBase, lseHeadStride)
    }

    /// Offset of element (row i of entry b, head h, 0) of q, dQ.
    @inline(__always) package func queryIndex(batch b: Int, row i: Int, head h: Int) -> Int { queryIndex(batch: b, row: i, head: h, width: headDim) }
    /// Offset of element (row i of entry b, head h, 0) of o, dO.
    @inline(__always) package func outputIndex(batch b: Int, row i: Int, head h: Int) -> Int { queryIndex(batch: b, row: i, head: h, width: valueHeadDim) }
    /// The same in an array of rows `width` floats per head (padded accumulators).
    @inline(__always) package func queryIndex(batch b: Int, row i: Int, head h: Int, width: Int) -> Int { ((queryBase[b] + i) * heads + h) * width }
    /// Offset of element (key j of entry b, kv head, 0) of k, dK.
    @inline(__always) package func keyIndex(batch b: Int, key j: Int, kvHead: Int) -> Int { ((keyBase[b] + j) * kvHeads + kvHead) * headDim }
    /// Offset of element (key j of entry b, kv head, 0) of v, dV.
    @inline(__always) package func valueIndex(batch b: Int, key j: Int, kvHead: Int) -> Int { ((keyBase[b] + j) * kvHeads + kvHead) * valueHeadDim }
    @inline(__always) package func lseIndex(batch b: Int, head h: Int, row i: Int) -> Int { lseBase[b] + h * lseHeadStride + i }
}

extension AttentionProblem {
    /// Rows (or keys) along the sequence axis the partitions cut: a fixed-length batch's seqlen,
    /// or a variable-length batch's packed total.
    public func sequenceLength(keys: Bool) -> Int {
        let total = keys ? totalKeys : totalQueries
        return packedLSE ? total : total / batch
    }

    /// The rows (or keys) of entry b, relative to the entry, that lie in `window` of the sequence
    /// axis; empty when none do.
    public func entryRange(_ b: Int, of window: Range<Int>, keys: Bool) -> Range<Int> {
        guard packedLSE else { return keys ? window.clamped(to: 0..<seqlenK(b)) : window.clamped(to: 0..<seqlenQ(b)) }
        let start = keys ? keyOffsets[b] : queryOffsets[b], end = keys ? keyOffsets[b + 1] : queryOffsets[b + 1]
        let part = window.clamped(to: start..<end)
        return part.lowerBound - start..<part.upperBound - start
    }

    /// Entry-relative `range` of entry b as a range of the sequence axis.
    public func sequenceRange(_ b: Int, _ range: Range<Int>, keys: Bool) -> Range<Int> {
        guard packedLSE else { return range }
        let start = keys ? keyOffsets[b] : queryOffsets[b]
        return start + range.lowerBound..<start + range.upperBound
    }
}
