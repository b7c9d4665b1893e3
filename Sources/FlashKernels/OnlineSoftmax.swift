import FlashAttentionCore
import Foundation

/// The forward pass of one tile: a block of query rows of one head against every key block they
/// can see, merged with the online softmax.
///
/// For each key block the scores S = Q·Kᵀ·scale are formed, and per query row:
///   m' = max(m, rowmax S),  P = e^(S − m'),  ℓ' = ℓ·e^(m − m') + rowsum P,  O' = O·e^(m − m') + P·V
/// After the last block O/ℓ is the softmax-weighted sum and lse = m + log ℓ. A row that sees no
/// key keeps m = −∞ and ℓ = 0 and ends with O = 0, lse = −∞ (or its sink, with sinks). Rows take
/// m' = 0 in place of −∞ in the exponent so that an all-masked block gives P = 0 instead of
/// e^(−∞ + ∞) = NaN.
///
/// The scores are held transposed, Sᵀ = K·Qᵀ (keys × queries): K is the broadcast operand, Qᵀ
/// (packed once per tile) is read 32 queries at a time, and the max and sum of each
/// query run down a column, sixteen queries per vector, with no horizontal reductions. Each score
/// is the same chain of FMAs over the head dimension either way.
struct OnlineSoftmax {
    let problem: AttentionProblem
    let placement: RowPlacement
    let q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>
    let o: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>
    /// Where to write lse's float32 rounding error, laid out like lse (nil: nowhere).
    let lseResidual: UnsafeMutablePointer<Float>?
    let rowsPerTile: Int
    /// Keys per block: the online softmax rescales once per block, so this groups its sums.
    let keysPerTile: Int

    /// What a tile carries from one key block to the next.
    struct State {
        let qT, acc, rowMax, rowSum: UnsafeMutablePointer<Float>
        init(_ carver: inout ScratchCarver, paddedDim dp: Int, paddedValueDim dvp: Int, rows br: Int) {
            qT = carver.take(dp * br)       // (dp, br) in panels of 16 columns: Qᵀ·scale of the tile's rows, zero-padded
            acc = carver.take(br * dvp)     // (br, dvp): the unnormalised output
            rowMax = carver.take(br)        // (br): running max m per query
            rowSum = carver.take(br)        // (br): running sum ℓ per query
        }
    }

    /// Per-worker scratch of one key block.
    struct Buffers {
        let sT, kBlock, vBlock: UnsafeMutablePointer<Float>
        init(_ carver: inout ScratchCarver, paddedDim dp: Int, paddedValueDim dvp: Int, keys bc: Int) {
            sT = carver.take(bc * OnlineSoftmax.queriesPerPass)  // (bc, 32): Sᵀ of one pass's queries, then Pᵀ in place
            kBlock = carver.take(bc * dp)   // (bc, dp): K of the block, dense and zero-padded
            vBlock = carver.take(bc * dvp)  // (bc, dvp) in panels of 16 columns: V of the block, zero-padded
        }
    }

    /// Queries that go through a key block's whole update together: two panels of sixteen, so that
    /// the block's K and V (16 KiB each at D = 64), which every pass reads, come into L1 half as
    /// often as one panel at a time would have them (the pass's own blocks are 8 KiB each).
    static let queriesPerPass = 2 * lanes

    var stateFloats: Int { ScratchCarver.floats { State(&$0, self) } }
    var bufferFloats: Int { ScratchCarver.floats { Buffers(&$0, self) } }
    var scratchFloats: Int { stateFloats + bufferFloats }

    func run(_ tile: Tile, scratch: UnsafeMutablePointer<Float>) {
        let mask = problem.mask(tile.batch)
        let rows = Tile.rowBlock(tile.block, of: mask, rows: rowsPerTile)
        let state = State(scratch, self), buffers = Buffers(scratch + stateFloats, self)
        begin(batch: tile.batch, head: tile.head, rows: rows, state: state)
        visit(batch: tile.batch, head: tile.head, rows: rows, keys: mask.keys(seenBy: rows), state: state, buffers: buffers)
        finish(batch: tile.batch, head: tile.head, rows: rows, state: state)
    }

    /// Packs Qᵀ of `rows` of head h and starts their running sums.
    func begin(batch b: Int, head h: Int, rows: Range<Int>, state: State) {
        let d = problem.headDim, rp = roundUpToLanes(rows.count)
        // The softmax scale rides in Qᵀ, so the scores come out of the product scaled.
        packTransposed(q + placement.queryIndex(batch: b, row: rows.lowerBound, head: h), sourceStride: problem.heads * d,
                       rows: rows.count, width: d, into: state.qT, paddedRows: d, paddedColumns: rowsPerTile,
                       times: problem.options.softmaxScale)
        state.acc.update(repeating: 0, count: rows.count * roundUpToLanes(problem.valueHeadDim))
        state.rowMax.update(repeating: -.infinity, count: rp)
        state.rowSum.update(repeating: 0, count: rp)
    }

    /// Merges the key blocks that overlap `keys` (entry-relative; they start on a block
    /// boundary of the entry's keys, as single blocks or the whole range) into the running sums of
    /// `rows`, in key order.
    ///
    /// Each block's K and V are packed once; then every pass of 32 queries goes through the whole
    /// update (scores, max, exp, sums, O += P·V) before the next, so its scores (8 KiB of Sᵀ) and
    /// its Qᵀ stay in L1 from the product that writes them to the one that reads them, and only
    /// the tile's Qᵀ and accumulator grow with its rows. A query's result is the same chain of
    /// operations as a block of queries at a time would give: the passes only reorder independent
    /// queries.
    func visit(batch b: Int, head h: Int, rows: Range<Int>, keys: Range<Int>, state: State, buffers: Buffers) {
        let d = problem.headDim, dv = problem.valueHeadDim, (dp, dvp) = (roundUpToLanes(d), roundUpToLanes(dv))
        let bc = keysPerTile, kvHead = h / problem.groupSize
        let mask = problem.mask(b), modifiers = ScoreModifiers(problem: problem)
        let (keyStride, valueStride) = (problem.kvHeads * d, problem.kvHeads * dv)
        let sT = buffers.sT, sStride = Self.queriesPerPass
        var j0 = keys.lowerBound / bc * bc
        while j0 < keys.upperBound {
            let block = j0..<min(j0 + bc, mask.seqlenK), width = block.count
            // Copied to dense scratch: in place their rows lie heads·D floats apart, often a multiple
            // of 4 KiB, and a column of them would all fall in one L1 set. V goes in panels of 16
            // columns, which P·V reads a panel at a time down all the block's keys.
            packRows(k + placement.keyIndex(batch: b, key: j0, kvHead: kvHead), sourceStride: keyStride, rows: width, width: d,
                     into: buffers.kBlock, paddedWidth: dp)
            packPanels(v + placement.valueIndex(batch: b, key: j0, kvHead: kvHead), sourceStride: valueStride, rows: width, width: dv,
                       into: buffers.vBlock, paddedRows: bc, paddedWidth: dvp)
            for first in stride(from: rows.lowerBound, to: rows.upperBound, by: Self.queriesPerPass) {
                let queries = first..<min(first + Self.queriesPerPass, rows.upperBound), c = first - rows.lowerBound
                let n = roundUpToLanes(queries.count)
                // Only the keys that some of these queries see: a block that none sees would leave
                // their sums as they are (P = 0, a rescale of exactly 1), under a causal mask the far
                // side of the diagonal; in a block the diagonal crosses, the keys beyond the last
                // query's would only add P = 0.
                let seen = block.clamped(to: mask.keys(seenBy: queries)), skipped = seen.lowerBound - j0
                guard !seen.isEmpty else { continue }
                // Sᵀ (seen, n) = K (seen, d) · Qᵀ (d, n)
                multiply(m: seen.count, n: n, k: d, a: buffers.kBlock + skipped * dp, aRowStride: dp, aColumnStride: 1,
                         b: state.qT + c * d, bRowStride: lanes, bPanelStride: d * lanes, c: sT, cRowStride: sStride, accumulate: false)
                if modifiers.changesScores {
                    modifiers.modifyKeyMajor(sT, rowStride: sStride, batch: b, head: h, keys: seen, queries: queries, paddedQueries: n)
                }
                if !mask.isFullyVisible(rows: queries, keys: seen) {
                    for t in 0..<seen.count {
                        let seers = mask.rows(seeing: seen.lowerBound + t..<seen.lowerBound + t + 1)
                        maskScores(sT + t * sStride, count: queries.count, visibleFrom: seers.lowerBound - first,
                                   through: seers.upperBound - 1 - first)
                    }
                }
                for panel in stride(from: 0, to: n, by: lanes) {
                    let rescale = mergePanel(width: seen.count, scores: sT + panel, rowStride: sStride, rowMax: state.rowMax + c + panel,
                                             rowSum: state.rowSum + c + panel)
                    // Past the first blocks the max seldom grows: one compare skips the sixteen rows.
                    guard any(rescale .!= 1) else { continue }
                    for t in panel..<min(panel + lanes, queries.count) where rescale[t - panel] != 1 {
                        scaleRow(state.acc + (c + t) * dvp, count: dvp, by: rescale[t - panel])
                    }
                }
                // The sums above are of the undropped probabilities: lse is the softmax's own.
                modifiers.applyDropoutKeyMajor(sT, rowStride: sStride, batch: b, head: h, keys: seen, queries: queries)
                // acc (queries, dvp) += P (queries, seen) · V (seen, dvp), P read down the columns of Sᵀ
                multiply(m: queries.count, n: dvp, k: seen.count, a: sT, aRowStride: 1, aColumnStride: sStride,
                         b: buffers.vBlock + skipped * lanes, bRowStride: lanes, bPanelStride: bc * lanes, c: state.acc + c * dvp,
                         cRowStride: dvp, accumulate: true)
            }
            j0 += bc
        }
    }

    /// O = acc/ℓ and lse = m + log ℓ of `rows`, with the sink logit added to the denominator when
    /// the problem has sinks.
    ///
    /// lse is also formed in float64, m + log ℓ exactly as the sums know it, and its float32
    /// rounding error r = lse₆₄ − lse₃₂ goes to `lseResidual`: with |S| ~ 10³ that error (~10⁻⁴)
    /// is what the backward's e^(S − lse) would otherwise carry as a relative error on every P.
    /// lse itself keeps the float32 arithmetic of a run without residuals, so its bytes stay those.
    func finish(batch b: Int, head h: Int, rows: Range<Int>, state: State) {
        let dv = problem.valueHeadDim, dvp = roundUpToLanes(dv)
        let sink = problem.options.sinks.map { Double($0[h]) }
        for t in 0..<rows.count {
            let sum = state.rowSum[t]
            let out = o + placement.outputIndex(batch: b, row: rows.lowerBound + t, head: h)
            let index = placement.lseIndex(batch: b, head: h, row: rows.lowerBound + t)
            // ℓ = 0 only for a row that saw no key; a NaN score makes ℓ NaN, and NaN flows on.
            var inverse: Float = sum == 0 ? 0 : 1 / sum
            var rowLSE: Float = sum == 0 ? -.infinity : state.rowMax[t] + Foundation.log(sum)
            var exact = sum == 0 ? -.infinity : Double(state.rowMax[t]) + Foundation.log(Double(sum))
            if let sink {
                // The sink joins the denominator: lse = log(e^lse_keys + e^s), and O, the keys'
                // weighted sum, shrinks by e^(lse_keys − lse), the share the keys keep.
                let withSink = logAddExp(exact, sink)
                if sum != 0 { inverse = Float(Foundation.exp(exact - withSink) / Double(sum)) }
                (exact, rowLSE) = (withSink, Float(withSink))
            }
            for c in 0..<dv { out[c] = state.acc[t * dvp + c] * inverse }
            lse[index] = rowLSE
            lseResidual?[index] = exact.isFinite ? Float(exact - Double(rowLSE)) : 0
        }
    }

    /// The online-softmax update of one panel of sixteen queries: new running max, P = e^(S − m')
    /// in place of the scores, new sum; returns the rescale factor e^(m − m') of the old sum and
    /// output.
    private func mergePanel(width: Int, scores: UnsafeMutablePointer<Float>, rowStride: Int, rowMax: UnsafeMutablePointer<Float>,
                            rowSum: UnsafeMutablePointer<Float>) -> Lanes {
        let previous = Lanes.load(rowMax)
        // Two chains of maxima, so that each waits on the one before last rather than the last (a
        // max is exact: any order gives the same).
        var (even, odd) = (previous, previous), t = 0
        while t + 1 < width {
            even = larger(even, Lanes.load(scores + t * rowStride))
            odd = larger(odd, Lanes.load(scores + (t + 1) * rowStride))
            t += 2
        }
        if t < width { even = larger(even, Lanes.load(scores + t * rowStride)) }
        let current = larger(even, odd)
        let pivot = current.replacing(with: 0, where: current .== -.infinity)
        var blockSum = Lanes.zero
        for t in 0..<width {
            let p = exp(Lanes.load(scores + t * rowStride) - pivot)
            p.store(scores + t * rowStride)
            blockSum += p
        }
        let rescale = exp(previous - pivot)
        current.store(rowMax)
        (Lanes.load(rowSum) * rescale + blockSum).store(rowSum)
        return rescale
    }
}


/// log(e^a + e^b) without overflow; −∞ when both are.
func logAddExp(_ a: Double, _ b: Double) -> Double {
    let high = max(a, b), low = min(a, b)
    guard high > -.infinity else { return high }
    return high + Foundation.log1p(Foundation.exp(low - high))
}

extension OnlineSoftmax.State {
    /// The state carved from the start of `base`.
    init(_ base: UnsafeMutablePointer<Float>, _ tile: OnlineSoftmax) {
        var carver = ScratchCarver(base)
        self.init(&carver, tile)
    }

    init(_ carver: inout ScratchCarver, _ tile: OnlineSoftmax) {
        self.init(&carver, paddedDim: roundUpToLanes(tile.problem.headDim), paddedValueDim: roundUpToLanes(tile.problem.valueHeadDim),
                  rows: tile.rowsPerTile)
    }
}

extension OnlineSoftmax.Buffers {
    init(_ base: UnsafeMutablePointer<Float>, _ tile: OnlineSoftmax) {
        var carver = ScratchCarver(base)
        self.init(&carver, tile)
    }

    init(_ carver: inout ScratchCarver, _ tile: OnlineSoftmax) {
        self.init(&carver, paddedDim: roundUpToLanes(tile.problem.headDim), paddedValueDim: roundUpToLanes(tile.problem.valueHeadDim),
                  keys: tile.keysPerTile)
    }
}
