import Foundation

/// The forward pass of one tile: a block of query rows of one head against every key block they
/// can see, merged with the online softmax.
///
/// For each key block the scores S = Q·Kᵀ·scale are formed, and per row:
///   m' = max(m, rowmax S),  P = e^(S − m'),  ℓ' = ℓ·e^(m − m') + rowsum P,  O' = O·e^(m − m') + P·V
/// After the last block O/ℓ is the softmax-weighted sum and lse = m + log ℓ. A row that sees no
/// key keeps m = −∞ and ℓ = 0 and ends with O = 0, lse = −∞. Rows take m' = 0 in place of −∞ in
/// the exponent so that an all-masked block gives P = 0 instead of e^(−∞ + ∞) = NaN.
struct ForwardTile {
    let problem: AttentionProblem
    let q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>
    let o: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>

    /// Per-worker scratch: the packed Q rows, Kᵀ and V of the current key block, the scores, the
    /// unnormalised output and the running max and sum of each row.
    struct Buffers {
        let qBlock, acc, kT, vBlock, s, rowMax, rowSum: UnsafeMutablePointer<Float>
        init(_ carver: inout ScratchCarver, paddedDim dp: Int) {
            let br = Tiling.queryRows, bc = Tiling.keyColumns
            qBlock = carver.take(br * dp); acc = carver.take(br * dp)
            kT = carver.take(dp * bc); vBlock = carver.take(bc * dp)
            s = carver.take(br * bc); rowMax = carver.take(br); rowSum = carver.take(br)
        }
    }

    var scratchFloats: Int { ScratchCarver.floats { Buffers(&$0, paddedDim: roundUpToLanes(problem.headDim)) } }

    func run(_ tile: Tile, scratch: UnsafeMutablePointer<Float>) {
        let d = problem.headDim, dp = roundUpToLanes(d)
        let bc = Tiling.keyColumns
        let b = tile.batch, h = tile.head, kvHead = h / problem.groupSize
        let mask = problem.mask(b)
        let rows = Tile.rowBlock(tile.block, of: mask)
        let scale = problem.options.softmaxScale
        var carver = ScratchCarver(scratch)
        let buffers = Buffers(&carver, paddedDim: dp)
        let (qBlock, acc, kT, vBlock) = (buffers.qBlock, buffers.acc, buffers.kT, buffers.vBlock)
        let (s, rowMax, rowSum) = (buffers.s, buffers.rowMax, buffers.rowSum)

        let qRow0 = problem.queryOffsets[b] + rows.lowerBound
        packRows(q + problem.queryIndex(row: qRow0, head: h), sourceStride: problem.heads * d,
                 rows: rows.count, width: d, into: qBlock, paddedWidth: dp)
        acc.update(repeating: 0, count: rows.count * dp)
        rowMax.update(repeating: -.infinity, count: rows.count)
        rowSum.update(repeating: 0, count: rows.count)

        let keys = mask.keys(seenBy: rows)
        let kvStride = problem.kvHeads * d
        var j0 = keys.lowerBound / bc * bc
        while j0 < keys.upperBound {
            let block = j0..<min(j0 + bc, mask.seqlenK), width = block.count, wp = roundUpToLanes(width)
            let kvRow = problem.keyIndex(row: problem.keyOffsets[b] + j0, kvHead: kvHead)
            packTransposed(k + kvRow, sourceStride: kvStride, rows: width, width: d,
                           into: kT, paddedRows: dp, paddedColumns: bc)
            packRows(v + kvRow, sourceStride: kvStride, rows: width, width: d, into: vBlock, paddedWidth: dp)
            (vBlock + width * dp).update(repeating: 0, count: (wp - width) * dp)

            multiply(m: rows.count, n: wp, k: dp, a: qBlock, aRowStride: dp, aColumnStride: 1,
                     b: kT, bRowStride: bc, c: s, cRowStride: bc, accumulate: false)
            let masked = !mask.isFullyVisible(rows: rows, keys: block) || width != wp
            for t in 0..<rows.count {
                let row = s + t * bc
                scaleScores(row, count: wp, by: scale)
                if masked {
                    let i = rows.lowerBound + t
                    maskScores(row, count: wp, visibleFrom: mask.firstKey(row: i) - j0,
                               through: min(mask.lastKey(row: i), block.upperBound - 1) - j0)
                }
                let previous = rowMax[t]
                let current = max(previous, rowMaximum(row, count: wp))
                let pivot = current == -.infinity ? 0 : current
                let blockSum = exponentiate(row, count: wp, minus: pivot)
                let rescale = Foundation.exp(previous - pivot)
                rowMax[t] = current
                rowSum[t] = rowSum[t] * rescale + blockSum
                if rescale != 1 { scaleScores(acc + t * dp, count: dp, by: rescale) }
            }
            multiply(m: rows.count, n: dp, k: wp, a: s, aRowStride: bc, aColumnStride: 1,
                     b: vBlock, bRowStride: dp, c: acc, cRowStride: dp, accumulate: true)
            j0 += bc
        }

        for t in 0..<rows.count {
            let sum = rowSum[t]
            let out = o + problem.queryIndex(row: qRow0 + t, head: h)
            let inverse: Float = sum > 0 ? 1 / sum : 0
            for c in 0..<d { out[c] = acc[t * dp + c] * inverse }
            lse[problem.lseIndex(batch: b, head: h, row: rows.lowerBound + t)] =
                sum > 0 ? rowMax[t] + Foundation.log(sum) : -.infinity
        }
    }
}

@inline(__always) func scaleScores(_ row: UnsafeMutablePointer<Float>, count: Int, by factor: Float) {
    var c = 0
    while c < count { (Lanes.load(row + c) * factor).store(row + c); c += lanes }
}

/// Sets every score outside columns first...last of the block to −∞ (all of them when last < first).
@inline(__always) func maskScores(_ row: UnsafeMutablePointer<Float>, count: Int, visibleFrom first: Int, through last: Int) {
    for c in 0..<count where c < first || c > last { row[c] = -.infinity }
}

@inline(__always) func rowMaximum(_ row: UnsafeMutablePointer<Float>, count: Int) -> Float {
    var m = Lanes(repeating: -.infinity)
    var c = 0
    while c < count { m = larger(m, Lanes.load(row + c)); c += lanes }
    return m.maximum()
}

/// Replaces each score x by e^(x − pivot) and returns their sum.
@inline(__always) func exponentiate(_ row: UnsafeMutablePointer<Float>, count: Int, minus pivot: Float) -> Float {
    var sum = Lanes.zero
    var c = 0
    while c < count {
        let p = exp(Lanes.load(row + c) - pivot)
        p.store(row + c)
        sum += p
        c += lanes
    }
    return sum.total()
}
