import FlashAttention

/// The tensor shapes of a fixed-length problem, in flash-attn's layout: what the partitions cut.
public struct TensorShapes: Sendable {
    public let batch, seqlenQ, seqlenK, heads, kvHeads, headDim: Int

    public init(_ problem: AttentionProblem) throws(PartitionError) {
        let (b, nq, nk) = (problem.batch, problem.totalQueries / problem.batch, problem.totalKeys / problem.batch)
        guard !problem.packedLSE, problem.queryOffsets == (0...b).map({ $0 * nq }),
              problem.keyOffsets == (0...b).map({ $0 * nk }) else {
            throw PartitionError(description: "variable-length batches cannot be partitioned across ranks yet")
        }
        (batch, seqlenQ, seqlenK, heads, kvHeads, headDim) = (b, nq, nk, problem.heads, problem.kvHeads, problem.headDim)
    }

    /// q, o, dO, dQ.
    public var query: [Int] { [batch, seqlenQ, heads, headDim] }
    /// k, v, dK, dV.
    public var key: [Int] { [batch, seqlenK, kvHeads, headDim] }
    public var lse: [Int] { [batch, heads, seqlenQ] }
}

/// A problem or rank count that a partition cannot handle, in one line.
public struct PartitionError: Error, CustomStringConvertible {
    public let description: String
}
