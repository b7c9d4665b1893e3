import FlashAttention
import TensorSlices

/// dL/ds of the sinks when the rows and heads are spread over ranks, bitwise as one process
/// computes it (`SinkGradient`).
///
/// A row's term needs its D = rowsum(dO ∘ O), which lives with the rank's query parts, and its
/// lse, which lives with its lse parts: under `--partition sequence` these are different ranks
/// (rows of every head against every row of some heads). So each rank places the D of its query
/// parts in a zero-filled float64 array laid out like the whole lse, an all-reduce sum gives
/// everyone every D (one non-zero addend per slot, so exact), each rank then places the terms of
/// its lse parts in a zero-filled array, a second sum gives everyone every term, and every rank
/// adds each head's terms in row order.
public enum SinkGradientReduction {
    /// `o` and `dO` are the rank's query parts one after the other (`AttentionPartition.queries`),
    /// `lse` and `lseResidual` its lse parts (`AttentionPartition.lse`; no residual reads as zeros); `sinks` are the whole
    /// problem's, one per head of `shapes`.
    public static func compute(shapes: TensorShapes, sinks: [Float], queries: [AxisSlice], o: [Float], dO: [Float],
                               lseParts: [AxisSlice], lse: [Float], lseResidual: [Float]?,
                               on communicator: Communicator) throws(MPIError) -> [Float] {
        let (heads, rows, d) = (shapes.heads, shapes.seqlenQ, shapes.headDim)
        var deltas = [Double](repeating: 0, count: shapes.batch * heads * rows)
        var start = 0
        o.withUnsafeBufferPointer { o in
            dO.withUnsafeBufferPointer { dO in
                for part in queries {
                    let local = part.localShape
                    for b in 0..<local[0] {
                        for i in 0..<local[1] {
                            for h in 0..<local[2] {
                                let at = start + ((b * local[1] + i) * local[2] + h) * d
                                let (row, head) = part.axis == 1 ? (part.range.lowerBound + i, h) : (i, part.range.lowerBound + h)
                                deltas[(b * heads + head) * rows + row] =
                                    SinkGradient.rowDelta(o: o.baseAddress! + at, dO: dO.baseAddress! + at, count: d)
                            }
                        }
                    }
                    start += part.elementCount
                }
            }
        }
        try communicator.allreduceSum(&deltas)
        var terms = [Double](repeating: 0, count: deltas.count)
        start = 0
        for part in lseParts {
            let local = part.localShape
            for b in 0..<local[0] {
                for h in 0..<local[1] {
                    for i in 0..<local[2] {
                        let at = start + (b * local[1] + h) * local[2] + i
                        let (head, row) = part.axis == 1 ? (part.range.lowerBound + h, i) : (h, part.range.lowerBound + i)
                        let slot = (b * heads + head) * rows + row
                        terms[slot] = SinkGradient.term(sink: sinks[head], lse: lse[at], residual: lseResidual?[at] ?? 0, delta: deltas[slot])
                    }
                }
            }
            start += part.elementCount
        }
        try communicator.allreduceSum(&terms)
        return SinkGradient.perHead(terms: terms, heads: heads, entries: shapes.batch)
    }
}
