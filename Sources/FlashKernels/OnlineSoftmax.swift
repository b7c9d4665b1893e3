import FlashAttentionCore
import Foundation

/// The forward pass of one tile: a block of query rows of one head against every key block they
/// can see, merged with the online softmax.
///
/// For each key block the scores S = Q·Kᵀ·scale are formed, and per query row:
///   m' = max(m, rowmax S),  P = e^(S − m'),  ℓ' = ℓ·e^(m − m') + rowsum P,  O' = O·e^(m − m') + P·V
/// After the last block O/ℓ is the softmax-weighted sum and lse = m + log ℓ. A row that sees no
/// key keeps m = −∞ and ℓ = 0 and ends with O = 0, lse = −∞. Rows take m' = 0 in place of −∞ in
/// the exponent so that an all-masked block gives P = 0 instead of e^(−∞ + ∞) = NaN.
///
/// The scores are held transposed, Sᵀ = K·Qᵀ (keys × queries): K is then read in place as the
/// broadcast operand and only Qᵀ is packed, once per tile, and the max and sum of each query run
/// down a column, sixteen queries per vector, with no horizontal reductions. Each score is the same
/// chain of FMAs over the head dimension either way.
struct ForwardTile {
    let problem: AttentionProblem
    let q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>
    let o: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>
    let rowsPerTile: Int
    let keyColumns: Int

    /// Per-worker scratch: Qᵀ of the tile, the transposed scores, V padded to whole vectors when
    /// the head dim needs it, the unnormalised output, and per query the running max and sum and
    /// the rescale factor of the current block.
    struct Buffers {
        let qT, sT, vBlock, acc, rowMax, rowSum, rescale: UnsafeMutablePointer<Float>
        init(_ carver: inout ScratchCarver, paddedDim dp: Int, rows br: Int, keys bc: Int) {
            qT = carver.take(dp * br); sT = carver.take(bc * br); vBlock = carver.take(bc * dp)
            acc = carver.take(br * dp); rowMax = carver.take(br); rowSum = carver.take(br); rescale = carver.take(br)
        }
    }

    var scratchFloats: Int {
        ScratchCarver.floats { Buffers(&$0, paddedDim: roundUpToLanes(problem.headDim), rows: rowsPerTile, keys: keyColumns) }
    }

    func run(_ tile: Tile, scratch: UnsafeMutablePointer<Float>) {
        let d = problem.headDim, dp = roundUpToLanes(d)
        let br = rowsPerTile, bc = keyColumns
        let b = tile.batch, h = tile.head, kvHead = h / problem.groupSize
        let mask = problem.mask(b), modifiers = ScoreModifiers(problem: problem)
        let rows = Tile.rowBlock(tile.block, of: mask, rows: br), rp = roundUpToLanes(rows.count)
        var carver = ScratchCarver(scratch)
        let buf = Buffers(&carver, paddedDim: dp, rows: br, keys: bc)

        let qRow0 = problem.queryOffsets[b] + rows.lowerBound
        // The softmax scale rides in Qᵀ, so the scores come out of the product scaled.
        packTransposed(q + problem.queryIndex(row: qRow0, head: h), sourceStride: problem.heads * d,
                       rows: rows.count, width: d, into: buf.qT, paddedRows: d, paddedColumns: br,
                       times: problem.options.softmaxScale)
        buf.acc.update(repeating: 0, count: rows.count * dp)
        buf.rowMax.update(repeating: -.infinity, count: rp)
        buf.rowSum.update(repeating: 0, count: rp)

        let keys = mask.keys(seenBy: rows)
        let kvStride = problem.kvHeads * d
        var j0 = keys.lowerBound / bc * bc
        while j0 < keys.upperBound {
            let block = j0..<min(j0 + bc, mask.seqlenK), width = block.count
            let kBlock = k + problem.keyIndex(row: problem.keyOffsets[b] + j0, kvHead: kvHead)
            let vSource = v + problem.keyIndex(row: problem.keyOffsets[b] + j0, kvHead: kvHead)
            multiply(m: width, n: rp, k: d, a: kBlock, aRowStride: kvStride, aColumnStride: 1,
                     b: buf.qT, bRowStride: br, c: buf.sT, cRowStride: br, accumulate: false)
            if modifiers.changesScores {
                modifiers.modifyKeyMajor(buf.sT, rowStride: br, batch: b, head: h, keys: block, queries: rows, paddedQueries: rp)
            }
            if !mask.isFullyVisible(rows: rows, keys: block) {
                for t in 0..<width {
                    let seers = mask.rows(seeing: j0 + t..<j0 + t + 1)
                    maskScores(buf.sT + t * br, count: rows.count, visibleFrom: seers.lowerBound - rows.lowerBound,
                               through: seers.upperBound - 1 - rows.lowerBound)
                }
            }
            mergeBlock(width: width, queries: rp, rowStride: br, buffers: buf)
            // The sums above are of the undropped probabilities: lse is the softmax's own.
            modifiers.applyDropoutKeyMajor(buf.sT, rowStride: br, batch: b, head: h, keys: block, queries: rows)
            for t in 0..<rows.count where buf.rescale[t] != 1 {
                scaleScores(buf.acc + t * dp, count: dp, by: buf.rescale[t])
            }
            // O += P·V, P read down the columns of Sᵀ. V is copied to consecutive rows: in place its
            // rows lie heads·D floats apart, often a multiple of 4 KiB, and a column of them would
            // all fall in one L1 set.
            packRows(vSource, sourceStride: kvStride, rows: width, width: d, into: buf.vBlock, paddedWidth: dp)
            multiply(m: rows.count, n: dp, k: width, a: buf.sT, aRowStride: 1, aColumnStride: br,
                     b: buf.vBlock, bRowStride: dp, c: buf.acc, cRowStride: dp, accumulate: true)
            j0 += bc
        }

        for t in 0..<rows.count {
            let sum = buf.rowSum[t]
            let out = o + problem.queryIndex(row: qRow0 + t, head: h)
            // ℓ = 0 only for a row that saw no key; a NaN score makes ℓ NaN, and NaN flows on.
            let inverse: Float = sum == 0 ? 0 : 1 / sum
            for c in 0..<d { out[c] = buf.acc[t * dp + c] * inverse }
            lse[problem.lseIndex(batch: b, head: h, row: rows.lowerBound + t)] =
                sum == 0 ? -.infinity : buf.rowMax[t] + Foundation.log(sum)
        }
    }

    /// The online-softmax update for sixteen queries at a time: new running max, P = e^(S − m')
    /// in place of the scores, the rescale factor e^(m − m') of the old sum and output, new sum.
    private func mergeBlock(width: Int, queries: Int, rowStride br: Int, buffers buf: Buffers) {
        var c = 0
        while c < queries {
            let previous = Lanes.load(buf.rowMax + c)
            var current = previous
            for t in 0..<width { current = larger(current, Lanes.load(buf.sT + t * br + c)) }
            let pivot = current.replacing(with: 0, where: current .== -.infinity)
            var blockSum = Lanes.zero
            for t in 0..<width {
                let p = exp(Lanes.load(buf.sT + t * br + c) - pivot)
                p.store(buf.sT + t * br + c)
                blockSum += p
            }
            let rescale = exp(previous - pivot)
            current.store(buf.rowMax + c)
            rescale.store(buf.rescale + c)
            (Lanes.load(buf.rowSum + c) * rescale + blockSum).store(buf.rowSum + c)
            c += lanes
        }
    }
}

