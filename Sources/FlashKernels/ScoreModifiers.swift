import FlashAttentionCore

/// What happens to a block of scores between Q·Kᵀ·scale and the product with V, besides masking:
/// softcap `c·tanh(S/c)`, the ALiBi bias `−slope·|i + Nk − Nq − j|`, and dropout of the
/// probabilities.
///
/// The forward holds blocks keys × queries, the backward queries × keys; both apply the same
/// per-element formulas, so the backward recomputes exactly the forward's logits. Heads are
/// counted in the whole problem (`firstHead + h`), so a rank that computes only some heads gets
/// the same slopes and the same dropout mask as a single process.
struct ScoreModifiers {
    let problem: AttentionProblem

    var changesScores: Bool { problem.options.softcap > 0 || problem.options.alibiSlopes != nil }
    var dropout: Dropout? { problem.options.dropout }

    /// Softcap and ALiBi on a forward block: row t is key `keys.lowerBound + t`, column c is query
    /// `queries.lowerBound + c`, for `paddedQueries` columns.
    func modifyKeyMajor(_ sT: UnsafeMutablePointer<Float>, rowStride: Int, batch b: Int, head h: Int,
                        keys: Range<Int>, queries: Range<Int>, paddedQueries: Int) {
        let shift = problem.seqlenK(b) - problem.seqlenQ(b)
        for t in 0..<keys.count {
            let row = sT + t * rowStride
            softcap(row, count: paddedQueries, derivative: nil)
            if let slope = slope(batch: b, head: h) {
                // Query column c is (first query + shift − key) + c from the key's diagonal.
                addDistanceBias(row, count: paddedQueries, slope: slope,
                                atFirstColumn: Float(queries.lowerBound + shift - (keys.lowerBound + t)), perColumn: 1)
            }
        }
    }

    /// Softcap and ALiBi on a backward block: row t is query `queries.lowerBound + t`, column c is
    /// key `keys.lowerBound + c`. With softcap, `derivative` receives 1 − tanh²(S/c), the factor
    /// the chain rule puts on dS.
    func modifyQueryMajor(_ s: UnsafeMutablePointer<Float>, rowStride: Int, batch b: Int, head h: Int,
                          queries: Range<Int>, keys: Range<Int>, paddedKeys: Int,
                          derivative: UnsafeMutablePointer<Float>) {
        let shift = problem.seqlenK(b) - problem.seqlenQ(b)
        for t in 0..<queries.count {
            let row = s + t * rowStride
            softcap(row, count: paddedKeys, derivative: derivative + t * rowStride)
            if let slope = slope(batch: b, head: h) {
                // Key column c is (query + shift − first key) − c from the query's diagonal.
                addDistanceBias(row, count: paddedKeys, slope: slope,
                                atFirstColumn: Float(queries.lowerBound + t + shift - keys.lowerBound), perColumn: -1)
            }
        }
    }

    private func slope(batch b: Int, head h: Int) -> Float? {
        problem.options.alibiSlopes?.slope(batch: b, head: problem.firstHead + h)
    }

    private func softcap(_ row: UnsafeMutablePointer<Float>, count: Int, derivative: UnsafeMutablePointer<Float>?) {
        let cap = problem.options.softcap
        guard cap > 0 else { return }
        var c = 0
        while c < count {
            let t = tanhWithDerivative(Lanes.load(row + c) / cap)
            (t.value * cap).store(row + c)
            if let derivative { t.derivative.store(derivative + c) }
            c += lanes
        }
    }

    /// row[c] −= slope·|first + perColumn·c|: the ALiBi bias along a row whose diagonal distance
    /// changes by `perColumn` per column. Distances are integers below 2²⁴, exact in float.
    private func addDistanceBias(_ row: UnsafeMutablePointer<Float>, count: Int, slope: Float,
                                 atFirstColumn first: Float, perColumn: Float) {
        let iota = Lanes(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
        var c = 0
        while c < count {
            let d = (iota + Float(c)) * perColumn + first
            Lanes.load(row + c).addingProduct(larger(d, -d), Lanes(repeating: -slope)).store(row + c)
            c += lanes
        }
    }

    // MARK: Dropout

    /// Dropout keep factors of a block, queries × keys: 0, or 1/(1 − p) for a kept probability.
    ///
    /// The value for (query i, key j) is word i mod 4 of Philox4x32-10 at counter
    /// (j, i / 4, head, batch) keyed by the seed: one call over sixteen keys gives four query rows.
    func keepFactorsQueryMajor(into factors: UnsafeMutablePointer<Float>, rowStride: Int, batch b: Int, head h: Int,
                               queries: Range<Int>, keys: Range<Int>, paddedKeys: Int) {
        forEachKeepVector(batch: b, head: h, queries: queries, keys: keys, paddedKeys: paddedKeys) { t, c, vector in
            vector.store(factors + t * rowStride + c)
        }
    }

    /// Multiplies a forward block of probabilities (keys × queries) by its dropout keep factors.
    func applyDropoutKeyMajor(_ pT: UnsafeMutablePointer<Float>, rowStride: Int, batch b: Int, head h: Int,
                              keys: Range<Int>, queries: Range<Int>) {
        forEachKeepVector(batch: b, head: h, queries: queries, keys: keys, paddedKeys: keys.count) { t, c, vector in
            for lane in 0..<min(lanes, keys.count - c) { pT[(c + lane) * rowStride + t] *= vector[lane] }
        }
    }

    /// Calls `body(query row t, first key column c, factors of keys c..<c+16)` over the block.
    private func forEachKeepVector(batch b: Int, head h: Int, queries: Range<Int>, keys: Range<Int>, paddedKeys: Int,
                                   _ body: (Int, Int, Lanes) -> Void) {
        guard let dropout, !queries.isEmpty else { return }
        let threshold = keepThreshold(dropout.probability)
        let kept = Lanes(repeating: 1 / (1 - dropout.probability))
        let head = UInt32(problem.firstHead + h), batch = UInt32(b)
        let keyIota = SIMD16<UInt32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
        for quad in queries.lowerBound / 4...(queries.upperBound - 1) / 4 {
            var c = 0
            while c < paddedKeys {
                let counters = keyIota &+ UInt32(keys.lowerBound + c)
                let words = Philox.generate(counters, UInt32(quad), head, batch, key: dropout.seed)
                for (w, word) in [words.0, words.1, words.2, words.3].enumerated() {
                    let t = quad * 4 + w - queries.lowerBound
                    guard t >= 0, t < queries.count else { continue }
                    body(t, c, Lanes.zero.replacing(with: kept, where: word .>= threshold))
                }
                c += lanes
            }
        }
    }

    /// Words at or above this are kept: a fraction 1 − p of all 2³² values.
    private func keepThreshold(_ p: Float) -> UInt32 {
        UInt32(min(Double(UInt32.max), (Double(p) * 4_294_967_296).rounded()))
    }
}
