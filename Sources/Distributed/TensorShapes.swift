import FlashAttention
import TensorSlices

/// The tensor shapes of a problem in flash-attn's layout: what the partitions cut. A
/// variable-length batch is seen as one entry of all its packed rows, `(1, total_q, heads,
/// headDim)` with lse `(1, heads, total_q)`, which is its packed layout with a leading axis of 1:
/// slicing heads or rows of that needs no knowledge of where the sequences start.
public struct TensorShapes: Sendable {
    public let batch, seqlenQ, seqlenK, heads, kvHeads, headDim, valueHeadDim: Int
    /// The problem's own offsets and lse layout, for the problem each rank computes.
    let queryOffsets, keyOffsets: [Int]
    let packedLSE: Bool

    public init(_ problem: AttentionProblem) {
        batch = problem.packedLSE ? 1 : problem.batch
        (seqlenQ, seqlenK) = (problem.totalQueries / batch, problem.totalKeys / batch)
        (heads, kvHeads, headDim, valueHeadDim) = (problem.heads, problem.kvHeads, problem.headDim, problem.valueHeadDim)
        (queryOffsets, keyOffsets, packedLSE) = (problem.queryOffsets, problem.keyOffsets, problem.packedLSE)
    }

    /// The same shapes with `count` keys per entry (a rank's run of keys).
    func withKeys(_ count: Int) -> TensorShapes {
        TensorShapes(batch: batch, seqlenQ: seqlenQ, seqlenK: count, heads: heads, kvHeads: kvHeads, headDim: headDim,
                     valueHeadDim: valueHeadDim, queryOffsets: queryOffsets, keyOffsets: keyOffsets, packedLSE: packedLSE)
    }

    private init(batch: Int, seqlenQ: Int, seqlenK: Int, heads: Int, kvHeads: Int, headDim: Int, valueHeadDim: Int,
                 queryOffsets: [Int], keyOffsets: [Int], packedLSE: Bool) {
        (self.batch, self.seqlenQ, self.seqlenK, self.heads, self.kvHeads) = (batch, seqlenQ, seqlenK, heads, kvHeads)
        (self.headDim, self.valueHeadDim) = (headDim, valueHeadDim)
        (self.queryOffsets, self.keyOffsets, self.packedLSE) = (queryOffsets, keyOffsets, packedLSE)
    }

    /// q, dQ.
    public var query: [Int] { [batch, seqlenQ, heads, headDim] }
    /// o, dO.
    public var output: [Int] { [batch, seqlenQ, heads, valueHeadDim] }
    /// k, dK.
    public var key: [Int] { [batch, seqlenK, kvHeads, headDim] }
    /// v, dV.
    public var value: [Int] { [batch, seqlenK, kvHeads, valueHeadDim] }
    public var lse: [Int] { [batch, heads, seqlenQ] }

    /// `shape` (one of the above) as the files hold it: a variable-length batch's files are its
    /// packed layout itself, `(total, heads, headDim)` and lse `(heads, total_q)`, without the
    /// leading axis of 1.
    public func inFile(_ shape: [Int]) -> [Int] { packedLSE ? Array(shape.dropFirst()) : shape }

    /// A slice of one of the above as the file holds it (see `inFile(_:)` for shapes).
    public func inFile(_ slice: AxisSlice) -> AxisSlice {
        guard packedLSE else { return slice }
        return AxisSlice(shape: inFile(slice.shape), axis: slice.axis - 1, range: slice.range)
    }

    /// The problem of query heads `heads` (global indices, so ALiBi slopes and dropout masks are
    /// those of the whole problem; the sinks are those heads' own) over `kvHeads` kv heads, all rows.
    func problem(heads: Range<Int>, kvHeads: Int, options: AttentionOptions) throws(AttentionError) -> AttentionProblem {
        try AttentionProblem(heads: heads.count, kvHeads: kvHeads, headDim: headDim, valueHeadDim: valueHeadDim, queryOffsets: queryOffsets,
                             keyOffsets: keyOffsets, packedLSE: packedLSE, firstHead: heads.lowerBound,
                             options: options.restricted(toHeads: heads))
    }
}

/// A problem or rank count that a partition cannot handle. The cases carry the counts a caller
/// words it with (the command line names its options).
public enum PartitionError: Error, CustomStringConvertible, Equatable {
    /// The heads partition gives every rank at least one query head.
    case moreRanksThanHeads(ranks: Int, heads: Int)
    /// The hybrid partition's groups of `groupSize` ranks must tile the ranks.
    case groupSizeNotDividingRanks(groupSize: Int, ranks: Int)

    public var description: String {
        switch self {
        case .moreRanksThanHeads(let ranks, let heads):
            "the heads partition needs at most one rank per query head: \(ranks) ranks, \(heads) query heads"
        case .groupSizeNotDividingRanks(let groupSize, let ranks):
            "groups of \(groupSize) ranks do not divide the \(ranks) ranks"
        }
    }
}
