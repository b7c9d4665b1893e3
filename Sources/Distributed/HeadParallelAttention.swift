import FlashAttention
import TensorSlices

/// `--partition heads`: rank r computes a contiguous range of query heads over the full sequence
/// (whole GQA groups where there are enough of them, see `HeadAssignment`) and holds only those
/// heads of q, o, dO, dQ, the kv heads of k and v they read, and the dK, dV it writes. No data moves between
/// ranks except the dK/dV contributions of groups split across ranks.
public struct HeadParallelAttention: AttentionPartition {
    let shard: HeadShardAttention

    public init(problem: AttentionProblem, communicator: Communicator, threads: Int) throws(PartitionError) {
        let shapes = TensorShapes(problem)
        guard communicator.size <= shapes.heads else {
            throw .moreRanksThanHeads(ranks: communicator.size, heads: shapes.heads)
        }
        let assignment = HeadAssignment(heads: shapes.heads, kvHeads: shapes.kvHeads, ranks: communicator.size)
        shard = HeadShardAttention(shapes: shapes, options: problem.options, assignment: assignment,
                                   communicator: communicator, threads: threads)
    }

    public var queries: [AxisSlice] { [AxisSlice(shape: shard.shapes.query, axis: 2, range: shard.heads)] }
    public var keys: AxisSlice { AxisSlice(shape: shard.shapes.key, axis: 2, range: shard.kvHeadsRead) }
    public var keyGradients: AxisSlice { AxisSlice(shape: shard.shapes.key, axis: 2, range: shard.kvHeadsWritten) }
    public var lse: [AxisSlice] { [AxisSlice(shape: shard.shapes.lse, axis: 1, range: shard.heads)] }

    public func forward(q: [Float], k: [Float], v: [Float]) -> (o: [Float], lse: [Float], lseResidual: [Float], saved: SavedForward) {
        let (o, lse, residual) = shard.forward(q: q, k: k, v: v)
        return (o, lse, residual, SavedForward(q: q, k: k, v: v, o: o, lse: lse, lseResidual: residual))
    }

    public func restore(q: [Float], k: [Float], v: [Float], o: [Float], lse: [Float], lseResidual: [Float]?) -> SavedForward {
        SavedForward(q: q, k: k, v: v, o: o, lse: lse, lseResidual: lseResidual)
    }

    public func backward(_ saved: SavedForward, dO: [Float]) throws(MPIError) -> (dQ: [Float], dK: [Float], dV: [Float]) {
        try shard.backward(q: saved.q, k: saved.k, v: saved.v, o: saved.o, lse: saved.lse, lseResidual: saved.lseResidual, dO: dO)
    }
}
