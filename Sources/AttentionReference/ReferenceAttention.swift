import Foundation

/// Plain attention in float64, one query head at a time, written from the definition with no
/// tiling and no shared code with the kernels, so that they can be checked against it.
///
/// Layouts are flash-attn's: q `(batch, seqlenQ, heads, headDim)`, k `(batch, seqlenK, kvHeads,
/// headDim)`, v `(batch, seqlenK, kvHeads, valueHeadDim)`, o and dO `(batch, seqlenQ, heads,
/// valueHeadDim)`. Query i sees key j when
/// `i + seqlenK − seqlenQ − left ≤ j` (left ≥ 0) and `j ≤ i + seqlenK − seqlenQ + right`
/// (right ≥ 0 or causal, where causal means right = min(right, 0)).
public struct ReferenceAttention: Sendable {
    public let batch, seqlenQ, seqlenK, heads, kvHeads, headDim, valueHeadDim: Int
    public let scale: Double
    public let causal: Bool
    public let windowLeft, windowRight: Int
    /// Softcap c (0 = off): logits c·tanh(S/c).
    public var softcap = 0.0
    /// ALiBi slopes, `heads` values or `batch × heads` (batch-major): bias −slope·|i + Nk − Nq − j|.
    public var alibiSlopes: [Double]?
    /// Attention sinks, one logit per head: each joins its rows' softmax denominator with no value.
    public var sinks: [Double]?
    /// Dropout: the factor (0 or 1/(1 − p)) applied to P[b, h, i, j] before it meets V.
    public var keep: (@Sendable (_ batch: Int, _ head: Int, _ query: Int, _ key: Int) -> Double)?
    let q, k, v: [Float]

    public init(q: [Float], k: [Float], v: [Float], batch: Int, seqlenQ: Int, seqlenK: Int,
                heads: Int, kvHeads: Int, headDim: Int, valueHeadDim: Int? = nil, scale: Double,
                causal: Bool = false, windowLeft: Int = -1, windowRight: Int = -1) {
        let valueHeadDim = valueHeadDim ?? headDim
        precondition(q.count == batch * seqlenQ * heads * headDim && k.count == batch * seqlenK * kvHeads * headDim
                     && v.count == batch * seqlenK * kvHeads * valueHeadDim && heads % kvHeads == 0)
        (self.q, self.k, self.v) = (q, k, v)
        (self.batch, self.seqlenQ, self.seqlenK) = (batch, seqlenQ, seqlenK)
        (self.heads, self.kvHeads, self.headDim, self.valueHeadDim) = (heads, kvHeads, headDim, valueHeadDim)
        (self.scale, self.causal, self.windowLeft, self.windowRight) = (scale, causal, windowLeft, windowRight)
    }

    public func isVisible(query i: Int, key j: Int) -> Bool {
        let diagonal = i + seqlenK - seqlenQ
        if windowLeft >= 0 && j < diagonal - windowLeft { return false }
        if causal && j > diagonal { return false }
        if windowRight >= 0 && j > diagonal + windowRight { return false }
        return true
    }

    func qIndex(_ b: Int, _ i: Int, _ h: Int) -> Int { ((b * seqlenQ + i) * heads + h) * headDim }
    func kIndex(_ b: Int, _ j: Int, _ h: Int) -> Int { ((b * seqlenK + j) * kvHeads + h / (heads / kvHeads)) * headDim }
    func vIndex(_ b: Int, _ j: Int, _ h: Int) -> Int { ((b * seqlenK + j) * kvHeads + h / (heads / kvHeads)) * valueHeadDim }
    func oIndex(_ b: Int, _ i: Int, _ h: Int) -> Int { ((b * seqlenQ + i) * heads + h) * valueHeadDim }

    /// Logits of query row i against every key (scaled, softcapped, biased; −∞ where masked),
    /// with d(logit)/d(scaled score): 1 − tanh² under softcap, else 1.
    func logits(_ b: Int, _ h: Int, _ i: Int) -> (values: [Double], capFactor: [Double]) {
        var values = [Double](repeating: -.infinity, count: seqlenK), capFactor = [Double](repeating: 1, count: seqlenK)
        for j in 0..<seqlenK where isVisible(query: i, key: j) {
            var dot = 0.0
            for d in 0..<headDim { dot += Double(q[qIndex(b, i, h) + d]) * Double(k[kIndex(b, j, h) + d]) }
            var logit = dot * scale
            if softcap > 0 {
                let t = Foundation.tanh(logit / softcap)
                (logit, capFactor[j]) = (softcap * t, 1 - t * t)
            }
            if let slopes = alibiSlopes {
                let slope = slopes.count == heads ? slopes[h] : slopes[b * heads + h]
                logit -= slope * Double(abs(i + seqlenK - seqlenQ - j))
            }
            values[j] = logit
        }
        return (values, capFactor)
    }

    /// Output row and logsumexp of query i of head h; a row that sees no key gives 0 and −∞ (or
    /// the sink).
    public func forwardRow(batch b: Int, head h: Int, row i: Int) -> (o: [Double], lse: Double) {
        let (p, lse) = probabilities(b, h, i)
        return (output(b, h, dropped(p, b, h, i)), lse)
    }

    func output(_ b: Int, _ h: Int, _ p: [Double]) -> [Double] {
        var o = [Double](repeating: 0, count: valueHeadDim)
        for j in 0..<seqlenK where p[j] != 0 {
            for d in 0..<valueHeadDim { o[d] += p[j] * Double(v[vIndex(b, j, h) + d]) }
        }
        return o
    }

    /// P with dropout applied: what multiplies V.
    func dropped(_ p: [Double], _ b: Int, _ h: Int, _ i: Int) -> [Double] {
        guard let keep else { return p }
        return p.indices.map { p[$0] * keep(b, h, i, $0) }
    }

    func probabilities(_ b: Int, _ h: Int, _ i: Int) -> (p: [Double], lse: Double) {
        let s = logits(b, h, i).values + (sinks.map { [$0[h]] } ?? [])
        let m = s.max() ?? -.infinity
        guard m > -.infinity else { return ([Double](repeating: 0, count: seqlenK), -.infinity) }
        let lse = m + Foundation.log(s.reduce(0) { $0 + Foundation.exp($1 - m) })
        // The sink, last in s, takes its share of the denominator and meets no value.
        return (s.prefix(seqlenK).map { Foundation.exp($0 - lse) }, lse)
    }

    /// dL/ds_h of head h's sink: −Σ_{b,i} P_sink(b, i)·D(b, i), D = rowsum(dO ∘ O).
    public func sinkGradient(head h: Int, dO: [Float]) -> Double {
        guard let sinks else { return 0 }
        var sum = 0.0
        for b in 0..<batch {
            for i in 0..<seqlenQ {
                let (p, lse) = probabilities(b, h, i)
                let o = output(b, h, dropped(p, b, h, i))
                let delta = (0..<headDim).reduce(0) { $0 + Double(dO[qIndex(b, i, h) + $1]) * o[$1] }
                sum -= Foundation.exp(sinks[h] - lse) * delta
            }
        }
        return sum
    }

    /// P with dropout applied (what met V) and dS, the gradient of the scaled scores, of query row
    /// i against every key: dS = P ∘ (dP∘keep − D)·(softcap factor)·scale, D = rowsum(dO ∘ O).
    func scoreGradients(_ b: Int, _ h: Int, _ i: Int, _ dO: [Float]) -> (pDropped: [Double], dS: [Double], dO: [Double]) {
        let (p, _) = probabilities(b, h, i)
        let pDropped = dropped(p, b, h, i), capFactor = logits(b, h, i).capFactor
        let o = output(b, h, pDropped)
        let g = (0..<valueHeadDim).map { Double(dO[oIndex(b, i, h) + $0]) }
        let delta = zip(g, o).reduce(0) { $0 + $1.0 * $1.1 }
        let dS = (0..<seqlenK).map { j -> Double in
            guard p[j] != 0 else { return 0 }
            var dp = 0.0
            for d in 0..<valueHeadDim { dp += g[d] * Double(v[vIndex(b, j, h) + d]) }
            let keptGradient = keep.map { dp * $0(b, h, i, j) } ?? dp
            return p[j] * (keptGradient - delta) * capFactor[j] * scale
        }
        return (pDropped, dS, g)
    }

    /// dQ of query row i of head h; `dO` is the whole output gradient, shaped like o.
    public func queryGradientRow(batch b: Int, head h: Int, row i: Int, dO: [Float]) -> [Double] {
        let (_, dS, _) = scoreGradients(b, h, i, dO)
        var dQ = [Double](repeating: 0, count: headDim)
        for j in 0..<seqlenK where dS[j] != 0 {
            for d in 0..<headDim { dQ[d] += dS[j] * Double(k[kIndex(b, j, h) + d]) }
        }
        return dQ
    }

    /// Gradients of one query head: dQ rows `(seqlenQ, headDim)`, and this head's contributions to
    /// dK `(seqlenK, headDim)` and dV `(seqlenK, valueHeadDim)` (the kv head's gradient is their
    /// sum over its group).
    public func backwardHead(batch b: Int, head h: Int, dO: [Float]) -> (dQ: [Double], dK: [Double], dV: [Double]) {
        var dQ = [Double](repeating: 0, count: seqlenQ * headDim)
        var dK = [Double](repeating: 0, count: seqlenK * headDim)
        var dV = [Double](repeating: 0, count: seqlenK * valueHeadDim)
        for i in 0..<seqlenQ {
            let (p, dS, g) = scoreGradients(b, h, i, dO)
            for j in 0..<seqlenK where p[j] != 0 || dS[j] != 0 {
                let kj = kIndex(b, j, h)
                for d in 0..<headDim {
                    dQ[i * headDim + d] += dS[j] * Double(k[kj + d])
                    dK[j * headDim + d] += dS[j] * Double(q[qIndex(b, i, h) + d])
                }
                for d in 0..<valueHeadDim { dV[j * valueHeadDim + d] += p[j] * g[d] }
            }
        }
        return (dQ, dK, dV)
    }
}
