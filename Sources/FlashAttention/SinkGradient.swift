import Foundation

/// The gradient of the sink logits. The sink of head h takes probability P_sink = e^(s_h − lse)
/// of each row and carries no value, and every key's P_ij = e^(S_ij − lse) shrinks as it grows
/// (∂P_ij/∂s_h = −P_ij·P_sink), so
///   dL/ds_h = −Σ_{b,i} e^(s_h − lse_{b,h,i}) · D_{b,h,i},  D = rowsum(dO ∘ O).
/// Each row's term is formed in float64 and the terms of a head are added in row order (batch
/// entry, then row), so that any caller that places the same terms in the same slots (an MPI rank
/// holding some rows or heads, `Distributed`'s reduction) gets the same bits.
public enum SinkGradient {
    /// D of one row, in float64.
    public static func rowDelta(o: UnsafePointer<Float>, dO: UnsafePointer<Float>, count: Int) -> Double {
        var sum = 0.0
        for c in 0..<count { sum += Double(dO[c]) * Double(o[c]) }
        return sum
    }

    /// One row's term of dL/ds_h, −e^(s_h − lse)·D, with lse as its float32 value plus
    /// the forward's residual.
    public static func term(sink: Float, lse: Float, residual: Float, delta: Double) -> Double {
        -Foundation.exp(Double(sink) - (Double(lse) + Double(residual))) * delta
    }

    /// dL/ds per head from the terms laid out like lse, `(entries, heads, rows)`: each head's
    /// terms summed in row order, starting from zero.
    public static func perHead(terms: [Double], heads: Int, entries: Int) -> [Float] {
        let rows = terms.count / max(1, entries * heads)
        return (0..<heads).map { h in
            var sum = 0.0
            for e in 0..<entries {
                for i in 0..<rows { sum += terms[(e * heads + h) * rows + i] }
            }
            return Float(sum)
        }
    }

    /// dL/ds of a problem with sinks computed by one process, from the forward's O, lse and lse
    /// residual (nil: zeros) and dO, in the problem's layouts.
    public static func compute(_ problem: AttentionProblem, o: [Float], dO: [Float], lse: [Float],
                               lseResidual: [Float]?) -> [Float] {
        guard let sinks = problem.options.sinks else { return [] }
        precondition(o.count == problem.queryElements && dO.count == problem.queryElements && lse.count == problem.lseElements
                     && (lseResidual?.count ?? lse.count) == lse.count, "tensor sizes do not match the problem")
        // lse is (batch, heads, seqlen_q), or (heads, total_q) for a packed batch: one entry of all rows.
        let entries = problem.packedLSE ? 1 : problem.batch, heads = problem.heads, d = problem.headDim
        let rows = problem.lseElements / max(1, entries * heads)
        var terms = [Double](repeating: 0, count: lse.count)
        o.withUnsafeBufferPointer { o in
            dO.withUnsafeBufferPointer { dO in
                for e in 0..<entries {
                    for i in 0..<rows {
                        for h in 0..<heads {
                            let row = ((e * rows + i) * heads + h) * d, slot = (e * heads + h) * rows + i
                            let delta = rowDelta(o: o.baseAddress! + row, dO: dO.baseAddress! + row, count: d)
                            terms[slot] = term(sink: sinks[h], lse: lse[slot], residual: lseResidual?[slot] ?? 0, delta: delta)
                        }
                    }
                }
            }
        }
        return perHead(terms: terms, heads: heads, entries: entries)
    }
}
