import FlashAttention
import TensorSlices

/// Attention over the query heads one rank owns, for the full sequence: the work that both
/// partitions end up doing on each rank.
///
/// Tensors are the rank's parts: q, dQ `(batch, seqlenQ, heads owned, headDim)`, o, dO the same
/// with valueHeadDim, k `(batch, seqlenK, kv heads read, headDim)` and v with valueHeadDim, lse
/// `(batch, heads owned, seqlenQ)`, and dK, dV `(batch, seqlenK, kv heads written, headDim or
/// valueHeadDim)`. The heads run as segments, each one
/// AttentionProblem on the threaded scheduler: a run of whole GQA groups, or the part of a group
/// that this rank shares with others. A head's results do not depend on which segment or rank
/// computes it, so they are bitwise those of a single process.
struct HeadShardAttention {
    let shapes: TensorShapes
    let options: AttentionOptions
    let assignment: HeadAssignment
    let communicator: Communicator
    let threads: Int

    /// Query heads that share one kv head, all on this rank: whole groups, or part of one.
    struct Segment {
        let heads: Range<Int>
        let kvHeads: Range<Int>
        let wholeGroups: Bool
    }

    var heads: Range<Int> { assignment.heads(of: communicator.rank) }
    var kvHeadsRead: Range<Int> { assignment.kvHeadsRead(by: communicator.rank) }
    var kvHeadsWritten: Range<Int> { assignment.kvHeadsWritten(by: communicator.rank) }

    var segments: [Segment] {
        var result: [Segment] = []
        for kvHead in kvHeadsRead {
            let group = assignment.group(kvHead)
            let part = max(heads.lowerBound, group.lowerBound)..<min(heads.upperBound, group.upperBound)
            let whole = part == group
            if whole, let last = result.last, last.wholeGroups {
                result[result.count - 1] = Segment(heads: last.heads.lowerBound..<part.upperBound,
                                                   kvHeads: last.kvHeads.lowerBound..<kvHead + 1, wholeGroups: true)
            } else {
                result.append(Segment(heads: part, kvHeads: kvHead..<kvHead + 1, wholeGroups: whole))
            }
        }
        return result
    }

    /// O, lse and lse's residual of the owned heads.
    func forward(q: [Float], k: [Float], v: [Float]) -> (o: [Float], lse: [Float], lseResidual: [Float]) {
        var o = [Float](repeating: 0, count: shapes.batch * shapes.seqlenQ * heads.count * shapes.valueHeadDim)
        var lse = [Float](repeating: 0, count: shapes.batch * heads.count * shapes.seqlenQ), residual = lse
        for segment in segments {
            let (rows, keys) = (querySlice(segment), keySlice(segment))
            let (outputRows, values) = (rows.withLastAxis(shapes.valueHeadDim), keys.withLastAxis(shapes.valueHeadDim))
            let result = FlashAttention.forwardWithResidual(problem(segment), q: rows.gather(q), k: keys.gather(k),
                                                            v: values.gather(v), threads: threads)
            outputRows.scatter(result.o, into: &o)
            lseSlice(segment).scatter(result.lse, into: &lse)
            lseSlice(segment).scatter(result.lseResidual, into: &residual)
        }
        return (o, lse, residual)
    }

    /// dQ of the owned heads, and dK, dV of the kv heads this rank writes (summed with the other
    /// ranks' contributions where a group is split).
    func backward(q: [Float], k: [Float], v: [Float], o: [Float], lse: [Float], lseResidual: [Float],
                  dO: [Float]) throws(MPIError) -> (dQ: [Float], dK: [Float], dV: [Float]) {
        var dQ = [Float](repeating: 0, count: q.count)
        let written = AxisSlice(shape: [shapes.batch, shapes.seqlenK, kvHeadsWritten.count, shapes.headDim],
                                axis: 2, range: 0..<kvHeadsWritten.count)
        var dK = [Float](repeating: 0, count: written.elementCount)
        var dV = [Float](repeating: 0, count: written.withLastAxis(shapes.valueHeadDim).elementCount)
        var reduction = SplitGroupReduction(shapes: shapes, assignment: assignment, communicator: communicator)
        for segment in segments {
            let (rows, keys) = (querySlice(segment), keySlice(segment))
            let (outputRows, values) = (rows.withLastAxis(shapes.valueHeadDim), keys.withLastAxis(shapes.valueHeadDim))
            let gradients = FlashAttention.backward(problem(segment), q: rows.gather(q), k: keys.gather(k), v: values.gather(v),
                                          o: outputRows.gather(o), lse: lseSlice(segment).gather(lse),
                                          lseResidual: lseSlice(segment).gather(lseResidual), dO: outputRows.gather(dO),
                                          keyGradients: segment.wholeGroups ? .summedOverGroup : .perQueryHead, threads: threads)
            rows.scatter(gradients.dQ, into: &dQ)
            if segment.wholeGroups {
                let mine = AxisSlice(shape: written.shape, axis: 2,
                                     range: segment.kvHeads.lowerBound - kvHeadsWritten.lowerBound..<segment.kvHeads.upperBound - kvHeadsWritten.lowerBound)
                mine.scatter(gradients.dK, into: &dK)
                mine.withLastAxis(shapes.valueHeadDim).scatter(gradients.dV, into: &dV)
            } else {
                try reduction.contribute(kvHead: segment.kvHeads.lowerBound, heads: segment.heads,
                                         dK: gradients.dK, dV: gradients.dV)
            }
        }
        try reduction.finish(written: kvHeadsWritten, dK: &dK, dV: &dV)
        return (dQ, dK, dV)
    }

    private func problem(_ segment: Segment) -> AttentionProblem {
        // Valid by construction: whole groups, or part of one group over a single kv head, of a
        // problem already checked.
        try! shapes.problem(heads: segment.heads, kvHeads: segment.kvHeads.count, options: options)
    }

    private func querySlice(_ segment: Segment) -> AxisSlice {
        AxisSlice(shape: [shapes.batch, shapes.seqlenQ, heads.count, shapes.headDim], axis: 2,
                  range: segment.heads.lowerBound - heads.lowerBound..<segment.heads.upperBound - heads.lowerBound)
    }

    private func keySlice(_ segment: Segment) -> AxisSlice {
        AxisSlice(shape: [shapes.batch, shapes.seqlenK, kvHeadsRead.count, shapes.headDim], axis: 2,
                  range: segment.kvHeads.lowerBound - kvHeadsRead.lowerBound..<segment.kvHeads.upperBound - kvHeadsRead.lowerBound)
    }

    private func lseSlice(_ segment: Segment) -> AxisSlice {
        AxisSlice(shape: [shapes.batch, heads.count, shapes.seqlenQ], axis: 1,
                  range: segment.heads.lowerBound - heads.lowerBound..<segment.heads.upperBound - heads.lowerBound)
    }
}
