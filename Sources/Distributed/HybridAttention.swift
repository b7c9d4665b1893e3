import FlashAttention
import TensorSlices

/// `--partition hybrid --ulysses U` (USP): the P ranks form P/U groups of U consecutive ranks,
/// meant to share a node. Each group holds the rows and keys that one rank of the ring would
/// (`RingLayout` over P/U stages), cut evenly among its U members; an all-to-all inside the group
/// (`Reshard`) gives each member those rows and keys for its own heads (as `HeadAssignment` shares
/// heads among U ranks), and the members that own the same heads in every group run the ring
/// between them, once per run of heads sharing kv heads (whole GQA groups, or the member's part of
/// one, whose per-head dK and dV the group then adds in head order: `SplitGroupReduction`).
/// Outputs go back by the inverse all-to-alls. Only copies are added to the ring's arithmetic, so
/// the bits are still those of one process.
public struct HybridAttention: AttentionPartition {
    let shapes: TensorShapes
    let ulysses: Int
    let group: Communicator
    let assignment: HeadAssignment

    /// A run of this member's heads that shares kv heads, with the ring that computes it.
    struct Segment {
        let part: HeadShardAttention.Segment
        /// Its heads and kv heads among those this member holds.
        let heads, kvHeads: Range<Int>
        let ring: RingAttention
    }
    let segments: [Segment]

    public init(problem: AttentionProblem, communicator: Communicator, threads: Int, ulysses: Int) throws {
        shapes = TensorShapes(problem)
        let ranks = communicator.size
        guard ulysses >= 1, ranks % ulysses == 0 else {
            throw PartitionError.groupSizeNotDividingRanks(groupSize: ulysses, ranks: ranks)
        }
        self.ulysses = ulysses
        group = try communicator.split(color: communicator.rank / ulysses, key: communicator.rank % ulysses)
        let stages = try communicator.split(color: communicator.rank % ulysses, key: communicator.rank / ulysses)
        assignment = HeadAssignment(heads: shapes.heads, kvHeads: shapes.kvHeads, ranks: ulysses)
        let (shapes, assignment, group) = (shapes, assignment, group)
        let own = assignment.heads(of: group.rank), read = assignment.kvHeadsRead(by: group.rank)
        // The tiles the whole problem gets in one process, fixed before each segment (fewer heads)
        // could pick others.
        var configuration = KernelConfiguration.current
        configuration.tiling.forwardRows = configuration.tiling.forwardRows(for: problem)
        configuration.tiling.backwardKeys = configuration.tiling.backwardKeys(for: problem)
        segments = try HeadShardAttention(shapes: shapes, options: problem.options, assignment: assignment, communicator: group,
                                          threads: threads).segments.map { part in
            let problem = try shapes.problem(heads: part.heads, kvHeads: part.kvHeads.count, options: problem.options)
            return Segment(part: part, heads: part.heads.lowerBound - own.lowerBound..<part.heads.upperBound - own.lowerBound,
                           kvHeads: part.kvHeads.lowerBound - read.lowerBound..<part.kvHeads.upperBound - read.lowerBound,
                           ring: RingAttention(problem: problem, communicator: stages, threads: threads,
                                               keyGradients: part.wholeGroups ? .summedOverGroup : .perQueryHead,
                                               configuration: configuration))
        }
        layout = RingLayout(problem, ranks: ranks / ulysses, tiling: configuration.tiling)
        stage = stages.rank
    }

    let layout: RingLayout
    let stage: Int

    private var windows: [Range<Int>] { layout.windows(stage) }
    private var keyRun: Range<Int> { layout.keys(stage) }
    private var own: Int { assignment.heads(of: group.rank).count }

    /// This member's even share of `rows`.
    private func share(_ rows: Range<Int>) -> Range<Int> {
        let part = EvenSplit(count: rows.count, parts: ulysses).range(group.rank)
        return rows.lowerBound + part.lowerBound..<rows.lowerBound + part.upperBound
    }

    public var queries: [AxisSlice] { windows.map { AxisSlice(shape: shapes.query, axis: 1, range: share($0)) } }
    public var keys: AxisSlice { AxisSlice(shape: shapes.key, axis: 1, range: share(keyRun)) }
    public var keyGradients: AxisSlice { keys }
    public var lse: [AxisSlice] { windows.map { AxisSlice(shape: shapes.lse, axis: 2, range: share($0)) } }

    /// The all-to-all of the group over window `rows` of a `(batch, seqlen, heads, width)` tensor.
    private func reshard(_ rows: Range<Int>, heads: Int, width: Int) -> Reshard {
        Reshard(shape: [shapes.batch, rows.count, heads, width], ranks: ulysses)
    }

    /// Query-shaped parts (this member's share of each window, every head, rows `width` floats per
    /// head: headDim for q, dQ, valueHeadDim for o, dO) to the ring's arrays (each whole window,
    /// this member's heads), window after window.
    private func queriesToHeads(_ values: [Float], width: Int) throws(MPIError) -> [Float] {
        var result: [Float] = [], start = 0
        for (window, part) in zip(windows, queries) {
            let count = part.withLastAxis(width).elementCount
            let mine = Array(values[start..<start + count])
            start += count
            result += try reshard(window, heads: shapes.heads, width: width).toHeads(mine, heads: assignment.heads(of:), on: group)
        }
        return result
    }

    /// The inverse of `queriesToHeads`.
    private func queriesToSequence(_ values: [Float], width: Int) throws(MPIError) -> [Float] {
        var result: [Float] = [], start = 0
        for window in windows {
            let count = shapes.batch * window.count * own * width
            let mine = Array(values[start..<start + count])
            start += count
            result += try reshard(window, heads: shapes.heads, width: width).toSequence(mine, heads: assignment.heads(of:), on: group)
        }
        return result
    }

    /// lse parts `(batch, heads, share)` to the ring's `(batch, own heads, window)`, through the
    /// all-to-all as `(batch, rows, heads, 1)`.
    private func lseToHeads(_ values: [Float]) throws(MPIError) -> [Float] {
        var result: [Float] = [], start = 0
        for window in windows {
            let rows = share(window).count, count = shapes.batch * shapes.heads * rows
            let mine = transposed(Array(values[start..<start + count]), shapes.heads, rows)
            start += count
            let full = try reshard(window, heads: shapes.heads, width: 1).toHeads(mine, heads: assignment.heads(of:), on: group)
            result += transposed(full, window.count, own)
        }
        return result
    }

    /// The inverse of `lseToHeads`.
    private func lseToSequence(_ values: [Float]) throws(MPIError) -> [Float] {
        var result: [Float] = [], start = 0
        for window in windows {
            let count = shapes.batch * own * window.count
            let mine = transposed(Array(values[start..<start + count]), own, window.count)
            start += count
            let part = try reshard(window, heads: shapes.heads, width: 1).toSequence(mine, heads: assignment.heads(of:), on: group)
            result += transposed(part, share(window).count, shapes.heads)
        }
        return result
    }

    /// `(batch, a, b)` as `(batch, b, a)`.
    private func transposed(_ values: [Float], _ a: Int, _ b: Int) -> [Float] {
        var result = values
        for batch in 0..<shapes.batch {
            for i in 0..<a { for j in 0..<b { result[(batch * b + j) * a + i] = values[(batch * a + i) * b + j] } }
        }
        return result
    }

    /// Key-shaped parts, rows `width` floats per head (headDim for k, dK, valueHeadDim for v, dV).
    private func keysToHeads(_ values: [Float], width: Int) throws(MPIError) -> [Float] {
        try reshard(keyRun, heads: shapes.kvHeads, width: width).toHeads(values, heads: assignment.kvHeadsRead(by:), on: group)
    }

    private func keysToSequence(_ values: [Float], width: Int) throws(MPIError) -> [Float] {
        try reshard(keyRun, heads: shapes.kvHeads, width: width).toSequence(values, heads: assignment.kvHeadsWritten(by:), on: group)
    }

    /// Segment `segment`'s part of a member array made of one array per window, each shaped
    /// `shape(window)` with the member's heads on `axis`; and the way back.
    private func gather(_ values: [Float], _ heads: Range<Int>, axis: Int, shape: (Range<Int>) -> [Int]) -> [Float] {
        var result: [Float] = [], start = 0
        for window in windows {
            let whole = shape(window), count = whole.reduce(1, *)
            result += AxisSlice(shape: whole, axis: axis, range: heads).gather(Array(values[start..<start + count]))
            start += count
        }
        return result
    }

    private func scatter(_ part: [Float], _ heads: Range<Int>, into values: inout [Float], axis: Int, shape: (Range<Int>) -> [Int]) {
        var start = 0, from = 0
        for window in windows {
            let whole = shape(window), count = whole.reduce(1, *)
            let slice = AxisSlice(shape: whole, axis: axis, range: heads)
            var region = Array(values[start..<start + count])
            slice.scatter(Array(part[from..<from + slice.elementCount]), into: &region)
            values.replaceSubrange(start..<start + count, with: region)
            (start, from) = (start + count, from + slice.elementCount)
        }
    }

    private func queryShape(_ window: Range<Int>) -> [Int] { [shapes.batch, window.count, own, shapes.headDim] }
    private func outputShape(_ window: Range<Int>) -> [Int] { [shapes.batch, window.count, own, shapes.valueHeadDim] }
    private func lseShape(_ window: Range<Int>) -> [Int] { [shapes.batch, own, window.count] }
    private var keyShape: [Int] {
        [shapes.batch, keyRun.count, assignment.kvHeadsRead(by: group.rank).count, shapes.headDim]
    }
    private var valueShape: [Int] {
        [shapes.batch, keyRun.count, assignment.kvHeadsRead(by: group.rank).count, shapes.valueHeadDim]
    }

    /// The member's arrays for segment `segment`'s ring.
    private func segmentSaved(_ segment: Segment, _ saved: SavedForward) -> SavedForward {
        segment.ring.restore(q: gather(saved.q, segment.heads, axis: 2, shape: queryShape),
                             k: AxisSlice(shape: keyShape, axis: 2, range: segment.kvHeads).gather(saved.k),
                             v: AxisSlice(shape: valueShape, axis: 2, range: segment.kvHeads).gather(saved.v),
                             o: gather(saved.o, segment.heads, axis: 2, shape: outputShape),
                             lse: gather(saved.lse, segment.heads, axis: 1, shape: lseShape),
                             lseResidual: gather(saved.lseResidual, segment.heads, axis: 1, shape: lseShape))
    }

    public func forward(q: [Float], k: [Float], v: [Float]) throws(MPIError)
        -> (o: [Float], lse: [Float], lseResidual: [Float], saved: SavedForward) {
        let (d, dv) = (shapes.headDim, shapes.valueHeadDim)
        let (q, k, v) = (try queriesToHeads(q, width: d), try keysToHeads(k, width: d), try keysToHeads(v, width: dv))
        var o = [Float](repeating: 0, count: q.count / d * dv), lse = [Float](repeating: 0, count: q.count / d), residual = lse
        for segment in segments {
            let result = try segment.ring.forward(q: gather(q, segment.heads, axis: 2, shape: queryShape),
                                                  k: AxisSlice(shape: keyShape, axis: 2, range: segment.kvHeads).gather(k),
                                                  v: AxisSlice(shape: valueShape, axis: 2, range: segment.kvHeads).gather(v))
            scatter(result.o, segment.heads, into: &o, axis: 2, shape: outputShape)
            scatter(result.lse, segment.heads, into: &lse, axis: 1, shape: lseShape)
            scatter(result.lseResidual, segment.heads, into: &residual, axis: 1, shape: lseShape)
        }
        return (try queriesToSequence(o, width: dv), try lseToSequence(lse), try lseToSequence(residual),
                SavedForward(q: q, k: k, v: v, o: o, lse: lse, lseResidual: residual))
    }

    public func restore(q: [Float], k: [Float], v: [Float], o: [Float], lse: [Float], lseResidual: [Float]?) throws(MPIError) -> SavedForward {
        let (d, dv) = (shapes.headDim, shapes.valueHeadDim)
        return SavedForward(q: try queriesToHeads(q, width: d), k: try keysToHeads(k, width: d), v: try keysToHeads(v, width: dv),
                            o: try queriesToHeads(o, width: dv), lse: try lseToHeads(lse),
                            lseResidual: try lseResidual.map { (values) throws(MPIError) in try lseToHeads(values) })
    }

    public func backward(_ saved: SavedForward, dO: [Float]) throws(MPIError) -> (dQ: [Float], dK: [Float], dV: [Float]) {
        let (d, dv) = (shapes.headDim, shapes.valueHeadDim)
        let dO = try queriesToHeads(dO, width: dv)
        let written = assignment.kvHeadsWritten(by: group.rank)
        let writtenShape = [shapes.batch, keyRun.count, written.count, d]
        var dQ = [Float](repeating: 0, count: saved.q.count), dK = [Float](repeating: 0, count: writtenShape.reduce(1, *))
        var dV = [Float](repeating: 0, count: writtenShape.reduce(1, *) / d * dv)
        var reduction = SplitGroupReduction(shapes: shapes.withKeys(keyRun.count), assignment: assignment, communicator: group)
        for segment in segments {
            let gradients = try segment.ring.backward(segmentSaved(segment, saved),
                                                      dO: gather(dO, segment.heads, axis: 2, shape: outputShape))
            scatter(gradients.dQ, segment.heads, into: &dQ, axis: 2, shape: queryShape)
            if segment.part.wholeGroups {
                let mine = AxisSlice(shape: writtenShape, axis: 2,
                                     range: segment.part.kvHeads.lowerBound - written.lowerBound..<segment.part.kvHeads.upperBound - written.lowerBound)
                mine.scatter(gradients.dK, into: &dK)
                mine.withLastAxis(dv).scatter(gradients.dV, into: &dV)
            } else {
                try reduction.contribute(kvHead: segment.part.kvHeads.lowerBound, heads: segment.part.heads, dK: gradients.dK, dV: gradients.dV)
            }
        }
        try reduction.finish(written: written, dK: &dK, dV: &dV)
        return (try queriesToSequence(dQ, width: d), try keysToSequence(dK, width: d), try keysToSequence(dV, width: dv))
    }
}
