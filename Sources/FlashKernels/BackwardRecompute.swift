import FlashAttentionCore

/// The backward pass, recomputing the attention probabilities block by block from Q, K and the
/// saved lse instead of storing them.
///
/// For a block of rows against a block of keys, with Q̃ = Q·scale packed once per row block:
///   P  = e^((Q̃·Kᵀ − lse) − r)         (the forward's softmax: r is lse's float32 rounding error,
///                                      which the forward reports; 0 when it is not known)
///   dP = dO·Vᵀ
///   dS = P ∘ (dP − D),  D = rowsum(dO ∘ O) computed once per row before any tile
/// and the gradients gather dV += Pᵀ·dO, dK += dSᵀ·Q̃ (= dSᵀ·Q·scale), dQ += dS·K, with dQ
/// multiplied by the scale once, when it is complete.
///
/// dK and dV of a key block need every row that sees it, dQ of a row block every key block it
/// sees; giving each tile exclusive ownership of what it writes keeps the sums in one fixed order
/// without atomics. When there are enough (batch, kv head) pairs to share out, one pass over them
/// owns everything of a group (dQ rows included) and walks its key blocks in order. Otherwise the
/// work runs as two passes: one over (batch, kv head, key block) that owns dK and dV and visits
/// the rows of every query head of its group, and one over (batch, head, row block) that owns dQ,
/// recomputing P and dS once more (two extra block products per tile). Every dQ row receives the
/// same additions in the same order either way, so the choice never changes a bit.
///
/// Within a GQA group each query head's contribution to dK and dV is formed on its own and the
/// group's are added in head order: ((0 + c₀) + c₁) + …. A caller that splits a group (across MPI
/// ranks, say) asks for the contributions themselves and adds them in the same order, and gets the
/// same bits.
struct BackwardRecompute {
    let problem: AttentionProblem
    let placement: RowPlacement
    let q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>
    let dO: UnsafePointer<Float>, lse: UnsafePointer<Float>
    /// The forward's lse residuals (`OnlineSoftmax.finish`), laid out like lse; nil reads as zeros.
    let lseResidual: UnsafePointer<Float>?
    /// D = rowsum(dO ∘ O), laid out like lse.
    let delta: UnsafePointer<Float>
    let keyGradients: KeyGradientLayout
    /// Query rows and keys per block.
    let rowsPerBlock: Int
    let keysPerBlock: Int

    /// Per-worker scratch: a row block, a key block, the tile between them, and the gradient
    /// blocks being accumulated.
    struct Buffers {
        var qBlock, dOBlock: UnsafeMutablePointer<Float>
        let rowLSE, rowResidual, rowDelta, kT, vT, kBlock, p, dS, gradA, gradB, headK, headV: UnsafeMutablePointer<Float>
        /// Only with softcap or dropout.
        let capDerivative, keep, pDropped: UnsafeMutablePointer<Float>
        init(_ carver: inout ScratchCarver, paddedDim dp: Int, paddedValueDim dvp: Int, rows br: Int, keys bc: Int) {
            let scores = BackwardRecompute.scoreStride(keys: bc)
            qBlock = carver.take(br * dp)               // (br, dp): Q·scale of the row block
            dOBlock = carver.take(br * dvp)             // (br, dvp): dO of the row block
            rowLSE = carver.take(br)                    // (br): lse per row
            rowResidual = carver.take(br)               // (br): lse's float32 rounding error per row
            rowDelta = carver.take(br)                  // (br): D = rowsum(dO ∘ O) per row
            kT = carver.take(dp * bc)                   // (dp, bc) in panels of 16 columns: Kᵀ of the key block
            vT = carver.take(dvp * bc)                  // (dvp, bc) in panels of 16 columns: Vᵀ of the key block
            kBlock = carver.take(bc * dp)               // (bc, dp) in panels of 16 columns: K of the key block (dQ += dS·K)
            p = carver.take(br * scores)                // (br, bc + 16): S, then P in place
            dS = carver.take(br * scores)               // (br, bc + 16): dP, then dS in place
            gradA = carver.take(max(br, bc) * dp)       // (bc, dp): dK of the key block, or (br, dp): dQ of a row block
            gradB = carver.take(bc * dvp)               // (bc, dvp): dV of the key block
            headK = carver.take(bc * dp)                // (bc, dp): one query head's share of dK
            headV = carver.take(bc * dvp)               // (bc, dvp): one query head's share of dV
            capDerivative = carver.take(br * scores)    // (br, bc + 16): 1 − tanh²(S/c), softcap's chain-rule factor
            keep = carver.take(br * scores)             // (br, bc + 16): dropout's keep factors, 0 or 1/(1 − p)
            pDropped = carver.take(br * scores)         // (br, bc + 16): P ∘ keep, what V saw
        }
    }

    /// Floats from one row of the (rows, keys) score blocks to the next: a vector more than the
    /// keys. dV += Pᵀ·dO and dK += dSᵀ·Q read P and dS down their columns, a line from each of 64
    /// rows; 256 floats apart, those lines would share 4 of L1's 64 sets and evict one another.
    static func scoreStride(keys: Int) -> Int { keys + lanes }
    var scoreStride: Int { Self.scoreStride(keys: keysPerBlock) }

    var scratchFloats: Int { ScratchCarver.floats { buffers(&$0) } }

    func buffers(_ carver: inout ScratchCarver) -> Buffers {
        Buffers(&carver, paddedDim: roundUpToLanes(problem.headDim), paddedValueDim: roundUpToLanes(problem.valueHeadDim),
                rows: rowsPerBlock, keys: keysPerBlock)
    }

    /// dK and dV of one key block of one kv head (the dK/dV pass).
    func runKeyTile(_ tile: Tile, scratch: UnsafeMutablePointer<Float>,
                    dK: UnsafeMutablePointer<Float>, dV: UnsafeMutablePointer<Float>) {
        var carver = ScratchCarver(scratch)
        keyBlockGradients(batch: tile.batch, kvHead: tile.head, block: tile.block,
                          buffers: buffers(&carver), dK: dK, dV: dV, dQ: nil)
    }

    /// All gradients of one kv head and its query heads in one pass: the tile owns their dQ rows,
    /// so each key block adds its dS·K into them directly. The additions to a dQ row come in key
    /// block order, exactly as in the dQ pass, so both ways give the same bits. Needs dQ rows that
    /// are whole vectors (head dim a multiple of 16).
    func runGroupTile(_ tile: Tile, scratch: UnsafeMutablePointer<Float>, dQ: UnsafeMutablePointer<Float>,
                      dK: UnsafeMutablePointer<Float>, dV: UnsafeMutablePointer<Float>) {
        let d = problem.headDim, b = tile.batch, mask = problem.mask(b)
        precondition(d == roundUpToLanes(d), "the fused backward needs whole-vector rows")
        for g in 0..<problem.groupSize {
            for i in 0..<mask.seqlenQ {
                let row = dQ + placement.queryIndex(batch: b, row: i, head: tile.head * problem.groupSize + g)
                row.update(repeating: 0, count: d)
            }
        }
        var carver = ScratchCarver(scratch)
        let buf = buffers(&carver)
        let packed = (0..<problem.groupSize).map { g in
            PackedRows(problem, placement: placement, q: q, dO: self.dO, batch: b, head: tile.head * problem.groupSize + g,
                       rows: 0..<mask.seqlenQ)
        }
        defer { for rows in packed { rows.deallocate() } }
        for block in 0..<Tile.blockCount(mask.seqlenK, keysPerBlock) {
            keyBlockGradients(batch: b, kvHead: tile.head, block: block, buffers: buf, dK: dK, dV: dV, dQ: dQ, packed: packed)
        }
        for g in 0..<problem.groupSize {
            for i in 0..<mask.seqlenQ {
                let row = dQ + placement.queryIndex(batch: b, row: i, head: tile.head * problem.groupSize + g)
                scaleRow(row, count: d, by: problem.options.softmaxScale)
            }
        }
    }

    /// dK and dV of one key block of one kv head; with `dQ`, also adds the block's dS·K into the
    /// dQ rows of the group's heads, which the caller owns.
    private func keyBlockGradients(batch b: Int, kvHead: Int, block: Int, buffers buf: Buffers,
                                   dK: UnsafeMutablePointer<Float>, dV: UnsafeMutablePointer<Float>,
                                   dQ: UnsafeMutablePointer<Float>?, packed: [PackedRows]? = nil) {
        let d = problem.headDim, dp = roundUpToLanes(d), dvp = roundUpToLanes(problem.valueHeadDim)
        let mask = problem.mask(b)
        let keys = Tile.keyBlock(block, of: mask, keys: keysPerBlock)
        packKeyBlock(batch: b, kvHead: kvHead, keys: keys, into: buf, transposedOnly: dQ == nil)
        // (keys, dp), (keys, dvp): the group's sums; (keys, dp), (keys, dvp): one head's share.
        let (dKBlock, dVBlock, dKHead, dVHead) = (buf.gradA, buf.gradB, buf.headK, buf.headV)
        dKBlock.update(repeating: 0, count: keys.count * dp)
        dVBlock.update(repeating: 0, count: keys.count * dvp)

        for g in 0..<problem.groupSize {
            let h = kvHead * problem.groupSize + g
            dKHead.update(repeating: 0, count: keys.count * dp)
            dVHead.update(repeating: 0, count: keys.count * dvp)
            accumulateHead(batch: b, head: h, keys: keys, rows: 0..<mask.seqlenQ, buffers: buf, dKHead: dKHead, dVHead: dVHead,
                           dQ: dQ.map { ($0, d) }, packed: packed?[g])
            switch keyGradients {
            case .perQueryHead:
                storeKeyBlock(dKHead, dVHead, batch: b, keys: keys, head: h, of: problem.heads, dK: dK, dV: dV)
            case .summedOverGroup:
                addBlock(dKHead, into: dKBlock, count: keys.count * dp)
                addBlock(dVHead, into: dVBlock, count: keys.count * dvp)
            }
        }
        if keyGradients == .summedOverGroup {
            storeKeyBlock(dKBlock, dVBlock, batch: b, keys: keys, head: kvHead, of: problem.kvHeads, dK: dK, dV: dV)
        }
    }

    /// Adds to one head's dK and dV of a key block (packed in `buf`) the contributions of the rows
    /// that see it, in blocks of `rowsPerBlock` from the first such row, in row order, and with `dQ`
    /// (rows `width` floats per head apart) adds the block's dS·K into their dQ rows. Only the
    /// rows within `window` are visited: a rank holding part of the rows goes through its own and
    /// hands the sums on, and the additions stay those of one pass over all rows.
    func accumulateHead(batch b: Int, head h: Int, keys: Range<Int>, rows window: Range<Int>, buffers buf: Buffers,
                        dKHead: UnsafeMutablePointer<Float>, dVHead: UnsafeMutablePointer<Float>,
                        dQ: (base: UnsafeMutablePointer<Float>, width: Int)?, packed: PackedRows? = nil) {
        let dp = roundUpToLanes(problem.headDim), dvp = roundUpToLanes(problem.valueHeadDim), br = rowsPerBlock
        let mask = problem.mask(b)
        let seen = mask.rows(seeing: keys)
        var i0 = seen.lowerBound / br * br
        while i0 < seen.upperBound {
            let rows = (i0..<min(i0 + br, mask.seqlenQ)).clamped(to: window)
            i0 += br
            // Only the panels of keys that some of these rows see: a row block on a causal diagonal
            // skips the far side of it, so the block's waste is a row block's width, not a key block's.
            let seenKeys = keys.clamped(to: mask.keys(seenBy: rows))
            guard !rows.isEmpty, !seenKeys.isEmpty else { continue }
            let skipped = (seenKeys.lowerBound - keys.lowerBound) / lanes * lanes
            let visible = keys.lowerBound + skipped..<seenKeys.upperBound
            var buf = buf
            if let packed {
                buf.qBlock = packed.q + (rows.lowerBound - packed.firstRow) * dp
                buf.dOBlock = packed.dO + (rows.lowerBound - packed.firstRow) * dvp
                packRowStats(batch: b, head: h, rows: rows, into: buf)
            } else {
                packRowBlock(batch: b, head: h, rows: rows, into: buf)
            }
            let pForValues = recompute(batch: b, head: h, mask: mask, rows: rows, keys: visible, packedFrom: skipped, buffers: buf)
            // dV (keys, dvp) += Pᵀ (keys, rows) · dO (rows, dvp) and dK (keys, dp) += dSᵀ (keys, rows) ·
            // Q (rows, dp): P and dS are read column by column.
            multiply(m: visible.count, n: dvp, k: rows.count, a: pForValues, aRowStride: 1, aColumnStride: scoreStride,
                     b: buf.dOBlock, bRowStride: dvp, c: dVHead + skipped * dvp, cRowStride: dvp, accumulate: true)
            multiply(m: visible.count, n: dp, k: rows.count, a: buf.dS, aRowStride: 1, aColumnStride: scoreStride,
                     b: buf.qBlock, bRowStride: dp, c: dKHead + skipped * dp, cRowStride: dp, accumulate: true)
            if let dQ {
                let firstRow = dQ.base + placement.queryIndex(batch: b, row: rows.lowerBound, head: h, width: dQ.width)
                accumulateQueryGradient(rows: rows.count, keys: visible.count, packedFrom: skipped, of: keys.count, buffers: buf,
                                        into: firstRow, rowStride: problem.heads * dQ.width)
            }
        }
    }

    /// Writes the first headDim (valueHeadDim) columns of gradient blocks to rows of dK (dV) with
    /// `heads` heads.
    private func storeKeyBlock(_ dKBlock: UnsafePointer<Float>, _ dVBlock: UnsafePointer<Float>, batch b: Int,
                               keys: Range<Int>, head: Int, of heads: Int,
                               dK: UnsafeMutablePointer<Float>, dV: UnsafeMutablePointer<Float>) {
        let (d, dv) = (problem.headDim, problem.valueHeadDim), (dp, dvp) = (roundUpToLanes(d), roundUpToLanes(dv))
        for t in 0..<keys.count {
            let row = (problem.keyOffsets[b] + keys.lowerBound + t) * heads + head
            (dK + row * d).update(from: dKBlock + t * dp, count: d)
            (dV + row * dv).update(from: dVBlock + t * dvp, count: dv)
        }
    }

    /// dQ of one row block of one head.
    func runQueryTile(_ tile: Tile, scratch: UnsafeMutablePointer<Float>, dQ: UnsafeMutablePointer<Float>) {
        let d = problem.headDim, dp = roundUpToLanes(d), bc = keysPerBlock
        var carver = ScratchCarver(scratch)
        let buf = buffers(&carver)
        let b = tile.batch, h = tile.head, mask = problem.mask(b)
        let rows = Tile.rowBlock(tile.block, of: mask, rows: rowsPerBlock)
        packRowBlock(batch: b, head: h, rows: rows, into: buf)
        let dQBlock = buf.gradA  // (rows, dp), before the scale
        dQBlock.update(repeating: 0, count: rows.count * dp)

        let seen = mask.keys(seenBy: rows)
        var j0 = seen.lowerBound / bc * bc
        while j0 < seen.upperBound {
            // As in `accumulateHead`, only keys these rows see: the rest would add dS = 0.
            let keys = (j0..<min(j0 + bc, mask.seqlenK)).clamped(to: seen)
            packKeyBlock(batch: b, kvHead: h / problem.groupSize, keys: keys, into: buf, transposedOnly: false)
            _ = recompute(batch: b, head: h, mask: mask, rows: rows, keys: keys, packedFrom: 0, buffers: buf)
            accumulateQueryGradient(rows: rows.count, keys: keys.count, packedFrom: 0, of: keys.count, buffers: buf,
                                    into: dQBlock, rowStride: dp)
            j0 += bc
        }
        let scale = problem.options.softmaxScale
        for t in 0..<rows.count {
            let out = dQ + placement.queryIndex(batch: b, row: rows.lowerBound + t, head: h)
            for c in 0..<d { out[c] = dQBlock[t * dp + c] * scale }
        }
    }

    /// dQ (rows, dp) += dS (rows, keys) · K (keys, dp) for one tile, into rows `rowStride` floats apart;
    /// the keys are those from `packedFrom` on of the `packedKeys` packed in `buf.kBlock`.
    private func accumulateQueryGradient(rows: Int, keys: Int, packedFrom skipped: Int, of packedKeys: Int, buffers buf: Buffers,
                                         into dQ: UnsafeMutablePointer<Float>, rowStride: Int) {
        multiply(m: rows, n: roundUpToLanes(problem.headDim), k: roundUpToLanes(keys),
                 a: buf.dS, aRowStride: scoreStride, aColumnStride: 1,
                 b: buf.kBlock + skipped * lanes, bRowStride: lanes, bPanelStride: roundUpToLanes(packedKeys) * lanes,
                 c: dQ, cRowStride: rowStride, accumulate: true)
    }

    /// Packs Q and dO rows of one head, with each row's lse and D.
    func packRowBlock(batch b: Int, head h: Int, rows: Range<Int>, into buf: Buffers) {
        let (d, dv) = (problem.headDim, problem.valueHeadDim)
        packRows(q + placement.queryIndex(batch: b, row: rows.lowerBound, head: h), sourceStride: problem.heads * d,
                 rows: rows.count, width: d, into: buf.qBlock, paddedWidth: roundUpToLanes(d), times: problem.options.softmaxScale)
        packRows(dO + placement.outputIndex(batch: b, row: rows.lowerBound, head: h), sourceStride: problem.heads * dv,
                 rows: rows.count, width: dv, into: buf.dOBlock, paddedWidth: roundUpToLanes(dv))
        packRowStats(batch: b, head: h, rows: rows, into: buf)
    }

    func packRowStats(batch b: Int, head h: Int, rows: Range<Int>, into buf: Buffers) {
        for t in 0..<rows.count {
            let index = placement.lseIndex(batch: b, head: h, row: rows.lowerBound + t)
            buf.rowLSE[t] = lse[index]
            buf.rowResidual[t] = lseResidual?[index] ?? 0
            buf.rowDelta[t] = delta[index]
        }
    }

    /// Packs Kᵀ and Vᵀ of one key block (the B operands of S and dP) and, for the dQ pass, K
    /// itself, zero-padded to a whole number of vectors of keys.
    func packKeyBlock(batch b: Int, kvHead: Int, keys: Range<Int>, into buf: Buffers, transposedOnly: Bool) {
        let d = problem.headDim, dp = roundUpToLanes(d), bc = keysPerBlock, stride = problem.kvHeads * d
        let dv = problem.valueHeadDim
        let first = placement.keyIndex(batch: b, key: keys.lowerBound, kvHead: kvHead)
        packTransposed(k + first, sourceStride: stride, rows: keys.count, width: d, into: buf.kT, paddedRows: dp, paddedColumns: bc)
        packTransposed(v + placement.valueIndex(batch: b, key: keys.lowerBound, kvHead: kvHead), sourceStride: problem.kvHeads * dv,
                       rows: keys.count, width: dv, into: buf.vT, paddedRows: roundUpToLanes(dv), paddedColumns: bc)
        if !transposedOnly {
            packPanels(k + first, sourceStride: stride, rows: keys.count, width: d, into: buf.kBlock,
                       paddedRows: roundUpToLanes(keys.count), paddedWidth: dp)
        }
    }

    /// P and dS of a tile into `buf.p` and `buf.dS` (rows × padded keys, row stride `scoreStride`);
    /// masked entries, padding, and rows that see no key (lse = −∞) get P = dS = 0. The keys are
    /// the packed ones from `packedFrom` (a whole number of vectors) on.
    private func recompute(batch b: Int, head h: Int, mask: AttentionMask, rows: Range<Int>, keys: Range<Int>,
                           packedFrom skipped: Int, buffers buf: Buffers) -> UnsafePointer<Float> {
        let dp = roundUpToLanes(problem.headDim), dvp = roundUpToLanes(problem.valueHeadDim)
        let sStride = scoreStride, wp = roundUpToLanes(keys.count)
        // S (rows, wp) = Q (rows, dp) · Kᵀ (dp, wp) and dP (rows, wp) = dO (rows, dvp) · Vᵀ (dvp, wp)
        multiply(m: rows.count, n: wp, k: dp, a: buf.qBlock, aRowStride: dp, aColumnStride: 1,
                 b: buf.kT + skipped * dp, bRowStride: lanes, bPanelStride: dp * lanes, c: buf.p, cRowStride: sStride,
                 accumulate: false)
        multiply(m: rows.count, n: wp, k: dvp, a: buf.dOBlock, aRowStride: dvp, aColumnStride: 1,
                 b: buf.vT + skipped * dvp, bRowStride: lanes, bPanelStride: dvp * lanes, c: buf.dS, cRowStride: sStride,
                 accumulate: false)
        let modifiers = ScoreModifiers(problem: problem)
        if modifiers.changesScores {
            modifiers.modifyQueryMajor(buf.p, rowStride: sStride, batch: b, head: h, queries: rows, keys: keys,
                                       paddedKeys: wp, derivative: buf.capDerivative)
        }
        let dropout = modifiers.dropout != nil, softcapped = problem.options.softcap > 0
        if dropout {
            modifiers.keepFactorsQueryMajor(into: buf.keep, rowStride: sStride, batch: b, head: h, queries: rows,
                                            keys: keys, paddedKeys: wp)
        }
        let masked = !mask.isFullyVisible(rows: rows, keys: keys) || keys.count != wp
        for t in 0..<rows.count {
            let p = buf.p + t * sStride, dS = buf.dS + t * sStride
            let rowLSE = buf.rowLSE[t]
            guard rowLSE != -.infinity else {
                p.update(repeating: 0, count: wp)
                (buf.pDropped + t * sStride).update(repeating: 0, count: wp)
                dS.update(repeating: 0, count: wp)
                continue
            }
            if masked {
                let i = rows.lowerBound + t
                maskScores(p, count: wp, visibleFrom: mask.firstKey(row: i) - keys.lowerBound,
                           through: min(mask.lastKey(row: i), keys.upperBound - 1) - keys.lowerBound)
            }
            let rowDelta = Lanes(repeating: buf.rowDelta[t]), rowResidual = Lanes(repeating: buf.rowResidual[t])
            var c = 0
            while c < wp {
                // With dropout, V saw P∘keep, so dP∘keep is the gradient of P; softcap's chain-rule
                // factor then carries dS back to the raw scores.
                // S − lse is exact where P matters (S and lse within a factor of 2), so the small
                // residual then lands on a small number and keeps its digits.
                let probability = exp((Lanes.load(p + c) - rowLSE) - rowResidual)
                probability.store(p + c)
                var dP = Lanes.load(dS + c)
                if dropout {
                    let keep = Lanes.load(buf.keep + t * sStride + c)
                    (probability * keep).store(buf.pDropped + t * sStride + c)
                    dP *= keep
                }
                var gradient = (dP - rowDelta) * probability
                if softcapped { gradient *= Lanes.load(buf.capDerivative + t * sStride + c) }
                gradient.store(dS + c)
                c += lanes
            }
        }
        return UnsafePointer(dropout ? buf.pDropped : buf.p)
    }
}

@inline(__always) func addBlock(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>, count: Int) {
    var c = 0
    while c < count { (Lanes.load(target + c) + Lanes.load(source + c)).store(target + c); c += lanes }
}

/// D = rowsum(dO ∘ O) (over the value head dim) for every head of `rows` of the sequence axis,
/// laid out like lse.
func rowDotProducts(_ problem: AttentionProblem, placement: RowPlacement, rows: Range<Int>,
                    dO: UnsafePointer<Float>, o: UnsafePointer<Float>, into delta: UnsafeMutablePointer<Float>) {
    let d = problem.valueHeadDim
    for b in 0..<problem.batch {
        for i in problem.entryRange(b, of: rows, keys: false) {
            for h in 0..<problem.heads {
                let index = placement.outputIndex(batch: b, row: i, head: h)
                var sum: Float = 0
                for c in 0..<d { sum = sum.addingProduct(dO[index + c], o[index + c]) }
                delta[placement.lseIndex(batch: b, head: h, row: i)] = sum
            }
        }
    }
}
