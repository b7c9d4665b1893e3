import AttentionReference
import FlashAttention

/// Compares sampled rows of a run with the float64 reference: o, lse and dq on up to 16 rows of
/// the first and last head, and dk, dv of the first kv head when the problem is small enough for
/// the reference to compute a whole head quickly.
struct SampledCheck {
    let problem: AttentionProblem
    let q: [Float], k: [Float], v: [Float], dO: [Float]

    func maxErrors(o: [Float], lse: [Float], grads: (dQ: [Float], dK: [Float], dV: [Float])?) -> [(name: String, error: Double)] {
        let (b, nq, nk, d) = (problem.batch, problem.totalQueries / problem.batch, problem.totalKeys / problem.batch, problem.headDim)
        let dv = problem.valueHeadDim
        var reference = ReferenceAttention(q: q, k: k, v: v, batch: b, seqlenQ: nq, seqlenK: nk, heads: problem.heads,
                                           kvHeads: problem.kvHeads, headDim: d, valueHeadDim: dv, scale: Double(problem.options.softmaxScale),
                                           causal: problem.options.causal, windowLeft: problem.options.windowLeft,
                                           windowRight: problem.options.windowRight)
        reference.sinks = problem.options.sinks?.map(Double.init)
        var errors = ["o": 0.0, "lse": 0.0, "dq": 0.0]
        let rows = (0..<min(16, nq)).map { $0 * nq / min(16, nq) }
        for (batch, head) in [(0, 0), (b - 1, problem.heads - 1)] {
            for i in rows {
                let row = reference.forwardRow(batch: batch, head: head, row: i)
                let (base, outputBase) = (((batch * nq + i) * problem.heads + head) * d, ((batch * nq + i) * problem.heads + head) * dv)
                errors["o"] = max(errors["o"]!, maxDifference(row.o, o[outputBase..<outputBase + dv]))
                errors["lse"] = max(errors["lse"]!, difference(row.lse, lse[(batch * problem.heads + head) * nq + i]))
                if let grads {
                    let dq = reference.queryGradientRow(batch: batch, head: head, row: i, dO: dO)
                    errors["dq"] = max(errors["dq"]!, maxDifference(dq, grads.dQ[base..<base + d]))
                }
            }
        }
        var result = [("o", errors["o"]!), ("lse", errors["lse"]!)]
        guard let grads else { return result }
        result.append(("dq", errors["dq"]!))
        if Double(nq) * Double(nk) * Double(problem.groupSize) <= 4096 * 4096 {
            var dK = [Double](repeating: 0, count: nk * d), dV = [Double](repeating: 0, count: nk * dv)
            for h in 0..<problem.groupSize {
                let head = reference.backwardHead(batch: 0, head: h, dO: dO)
                for x in 0..<nk * d { dK[x] += head.dK[x] }
                for x in 0..<nk * dv { dV[x] += head.dV[x] }
            }
            var dkError = 0.0, dvError = 0.0
            for j in 0..<nk {
                let (base, valueBase) = (j * problem.kvHeads * d, j * problem.kvHeads * dv)
                dkError = max(dkError, maxDifference(Array(dK[j * d..<(j + 1) * d]), grads.dK[base..<base + d]))
                dvError = max(dvError, maxDifference(Array(dV[j * dv..<(j + 1) * dv]), grads.dV[valueBase..<valueBase + dv]))
            }
            result += [("dk", dkError), ("dv", dvError)]
        }
        return result
    }

    private func maxDifference(_ reference: [Double], _ values: ArraySlice<Float>) -> Double {
        zip(reference, values).reduce(0) { max($0, difference($1.0, $1.1)) }
    }

    /// |reference − value|, 0 where both are the same infinity, ∞ where only one is finite.
    private func difference(_ reference: Double, _ value: Float) -> Double {
        if reference == Double(value) { return 0 }
        return reference.isFinite && value.isFinite ? abs(reference - Double(value)) : .infinity
    }
}
