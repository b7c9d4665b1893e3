import FlashAttention
import TensorSlices

/// One way of spreading an attention problem over the ranks of a communicator. Every rank calls
/// the same methods in the same order with its own parts of the tensors, as the slices say; the
/// results are bitwise those of a single process, whatever the rank count.
public protocol AttentionPartition {
    /// The parts of q and dQ `(batch, seqlenQ, heads, headDim)` this rank passes and gets, their
    /// arrays one after the other; of o and dO the same parts with the last axis valueHeadDim
    /// (`AxisSlice.withLastAxis`). Every rank has as many parts (some may be empty), so that they
    /// can write them collectively part by part.
    var queries: [AxisSlice] { get }
    /// The part of k `(batch, seqlenK, kvHeads, headDim)` this rank passes, and of v the same with
    /// the last axis valueHeadDim.
    var keys: AxisSlice { get }
    /// The part of dK (and, with the last axis valueHeadDim, of dV) this rank gets back.
    var keyGradients: AxisSlice { get }
    /// The parts of lse `(batch, heads, seqlenQ)` this rank gets from the forward and passes to
    /// `restore`, as `queries`: ranges of heads over the full sequence (axis 1), or of rows of
    /// every head (axis 2).
    var lse: [AxisSlice] { get }

    /// O (this rank's `queries` parts), lse and its float32 rounding error (its `lse` parts), and
    /// what the backward needs.
    func forward(q: [Float], k: [Float], v: [Float]) throws(MPIError)
        -> (o: [Float], lse: [Float], lseResidual: [Float], saved: SavedForward)
    /// What the backward needs, from a forward saved earlier (o and lse from files, say); without
    /// lse's residual, the backward takes it as zero.
    func restore(q: [Float], k: [Float], v: [Float], o: [Float], lse: [Float], lseResidual: [Float]?) throws(MPIError) -> SavedForward
    /// dQ (this rank's `queries` parts) and dK, dV (its `keyGradients` part), recomputed from the
    /// saved lse.
    func backward(_ saved: SavedForward, dO: [Float]) throws(MPIError) -> (dQ: [Float], dK: [Float], dV: [Float])
}

/// A forward's inputs and outputs as this rank holds them: what the backward recomputes from.
public struct SavedForward: Sendable {
    let q, k, v, o, lse: [Float]
    /// lse₆₄ − lse per lse entry (`FlashAttention.forwardWithResidual`), zeros when not known.
    let lseResidual: [Float]

    init(q: [Float], k: [Float], v: [Float], o: [Float], lse: [Float], lseResidual: [Float]?) {
        (self.q, self.k, self.v, self.o, self.lse) = (q, k, v, o, lse)
        self.lseResidual = lseResidual ?? [Float](repeating: 0, count: lse.count)
    }
}

extension AttentionPartition {
    /// What the backward needs from a saved o and lse without lse's residual.
    public func restore(q: [Float], k: [Float], v: [Float], o: [Float], lse: [Float]) throws(MPIError) -> SavedForward {
        try restore(q: q, k: k, v: v, o: o, lse: lse, lseResidual: nil)
    }
}
