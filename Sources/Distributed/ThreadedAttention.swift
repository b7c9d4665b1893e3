import FlashAttention
import TensorSlices

/// The whole problem on this process's threads, as a partition of one rank: what a run without
/// mpirun uses, so that it reads and writes its files by the same path as the partitions. Its
/// parts are whole tensors, given as every row of the sequence axis so that a file holds each
/// batch entry's part in one run of bytes.
public struct ThreadedAttention: AttentionPartition {
    let problem: AttentionProblem
    let shapes: TensorShapes
    let threads: Int

    public init(problem: AttentionProblem, threads: Int) {
        (self.problem, self.shapes, self.threads) = (problem, TensorShapes(problem), threads)
    }

    public var queries: [AxisSlice] { [AxisSlice(shape: shapes.query, axis: 1, range: 0..<shapes.seqlenQ)] }
    public var keys: AxisSlice { AxisSlice(shape: shapes.key, axis: 1, range: 0..<shapes.seqlenK) }
    public var keyGradients: AxisSlice { keys }
    /// Every head over the full sequence, as the heads partition gives lse (and the dropout mask).
    public var lse: [AxisSlice] { [AxisSlice(shape: shapes.lse, axis: 1, range: 0..<shapes.heads)] }

    public func forward(q: [Float], k: [Float], v: [Float]) -> (o: [Float], lse: [Float], lseResidual: [Float], saved: SavedForward) {
        let (o, lse, residual) = FlashAttention.forwardWithResidual(problem, q: q, k: k, v: v, threads: threads)
        return (o, lse, residual, SavedForward(q: q, k: k, v: v, o: o, lse: lse, lseResidual: residual))
    }

    public func restore(q: [Float], k: [Float], v: [Float], o: [Float], lse: [Float], lseResidual: [Float]?) -> SavedForward {
        SavedForward(q: q, k: k, v: v, o: o, lse: lse, lseResidual: lseResidual)
    }

    public func backward(_ saved: SavedForward, dO: [Float]) -> (dQ: [Float], dK: [Float], dV: [Float]) {
        FlashAttention.backward(problem, q: saved.q, k: saved.k, v: saved.v, o: saved.o, lse: saved.lse,
                                lseResidual: saved.lseResidual, dO: dO, threads: threads)
    }
}
