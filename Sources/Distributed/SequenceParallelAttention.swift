import FlashAttention
import TensorSlices

/// `--partition sequence` (DeepSpeed-Ulysses): rank r holds a contiguous shard of the sequence
/// rows of every head, for sequences whose full q, k, v do not fit one node.
///
/// An all-to-all (`Reshard`) turns the shards of q, k, v into the full sequence of the heads the
/// rank owns (the same heads as `--partition heads` would give it), attention runs there, and an
/// all-to-all turns O back into sequence shards; the backward does the same for dO, and dQ, dK,
/// dV. lse stays with the heads: each rank gets and keeps its heads' rows over the full sequence.
/// For callers whose tensors are already sharded this way in memory, pass each rank's shard of
/// the rows `queries[0].range` / `keys.range`.
public struct SequenceParallelAttention: AttentionPartition {
    let shard: HeadShardAttention
    let queryReshard: Reshard
    let keyReshard: Reshard
    /// o and dO, v and dV: the same rows as q and k, with the value head dim.
    let outputReshard: Reshard
    let valueReshard: Reshard

    public init(problem: AttentionProblem, communicator: Communicator, threads: Int) throws(PartitionError) {
        let shapes = TensorShapes(problem)
        let assignment = HeadAssignment(heads: shapes.heads, kvHeads: shapes.kvHeads, ranks: communicator.size)
        shard = HeadShardAttention(shapes: shapes, options: problem.options, assignment: assignment,
                                   communicator: communicator, threads: threads)
        queryReshard = Reshard(shape: shapes.query, ranks: communicator.size)
        keyReshard = Reshard(shape: shapes.key, ranks: communicator.size)
        outputReshard = Reshard(shape: shapes.output, ranks: communicator.size)
        valueReshard = Reshard(shape: shapes.value, ranks: communicator.size)
    }

    private var communicator: Communicator { shard.communicator }
    private var assignment: HeadAssignment { shard.assignment }

    public var queries: [AxisSlice] { [queryReshard.shardSlice(communicator.rank)] }
    public var keys: AxisSlice { keyReshard.shardSlice(communicator.rank) }
    public var keyGradients: AxisSlice { keys }
    public var lse: [AxisSlice] { [AxisSlice(shape: shard.shapes.lse, axis: 1, range: shard.heads)] }

    public func forward(q: [Float], k: [Float], v: [Float]) throws(MPIError)
        -> (o: [Float], lse: [Float], lseResidual: [Float], saved: SavedForward) {
        let q = try queryReshard.toHeads(q, heads: assignment.heads(of:), on: communicator)
        let k = try keyReshard.toHeads(k, heads: assignment.kvHeadsRead(by:), on: communicator)
        let v = try valueReshard.toHeads(v, heads: assignment.kvHeadsRead(by:), on: communicator)
        let (o, lse, residual) = shard.forward(q: q, k: k, v: v)
        let localO = try outputReshard.toSequence(o, heads: assignment.heads(of:), on: communicator)
        return (localO, lse, residual, SavedForward(q: q, k: k, v: v, o: o, lse: lse, lseResidual: residual))
    }

    public func restore(q: [Float], k: [Float], v: [Float], o: [Float], lse: [Float], lseResidual: [Float]?) throws(MPIError) -> SavedForward {
        SavedForward(q: try queryReshard.toHeads(q, heads: assignment.heads(of:), on: communicator),
                     k: try keyReshard.toHeads(k, heads: assignment.kvHeadsRead(by:), on: communicator),
                     v: try valueReshard.toHeads(v, heads: assignment.kvHeadsRead(by:), on: communicator),
                     o: try outputReshard.toHeads(o, heads: assignment.heads(of:), on: communicator),
                     lse: lse, lseResidual: lseResidual)
    }

    public func backward(_ saved: SavedForward, dO: [Float]) throws(MPIError) -> (dQ: [Float], dK: [Float], dV: [Float]) {
        let dO = try outputReshard.toHeads(dO, heads: assignment.heads(of:), on: communicator)
        let (dQ, dK, dV) = try shard.backward(q: saved.q, k: saved.k, v: saved.v, o: saved.o, lse: saved.lse,
                                              lseResidual: saved.lseResidual, dO: dO)
        return (try queryReshard.toSequence(dQ, heads: assignment.heads(of:), on: communicator),
                try keyReshard.toSequence(dK, heads: assignment.kvHeadsWritten(by:), on: communicator),
                try valueReshard.toSequence(dV, heads: assignment.kvHeadsWritten(by:), on: communicator))
    }
}
