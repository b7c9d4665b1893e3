import FlashAttentionCore
import Foundation

/// `StandardAttention` on this instruction set's products (its layout and the algorithm's
/// description live with it in FlashAttentionCore).
package enum StandardKernels {
    /// O, lse and the stored P (`probabilityElements` floats).
    package static func forward(_ problem: AttentionProblem, q: [Float], k: [Float], v: [Float],
                               o: inout [Float], lse: inout [Float], p: inout [Float], threads: Int) {
        precondition(StandardAttention.supports(problem) && p.count == StandardAttention.probabilityElements(problem)
                     && o.count == problem.outputElements
                     && lse.count == problem.lseElements, "standard attention: sizes or options do not match")
        let nq = problem.longestQueries
        let (dp, dvp) = (roundUpToLanes(problem.headDim), roundUpToLanes(problem.valueHeadDim))
        let ld = StandardAttention.rowStride(problem.longestKeys)
        let tiles = (0..<problem.batch).flatMap { b in
            (0..<problem.heads).map { Tile(batch: b, head: $0, block: 0, cost: problem.seqlenQ(b) * problem.seqlenK(b)) }
        }
        o.withUnsafeMutableBufferPointer { o in
            lse.withUnsafeMutableBufferPointer { lse in
                p.withUnsafeMutableBufferPointer { p in
                    let out = UncheckedSendable(value: (o: o.start, lse: lse.start, p: p.start))
                    // S, Kᵀ, V and the accumulator (`forwardHead`).
                    let scratch = nq * ld + (dp + dvp) * ld + nq * dvp + 4 * lanes
                    TileScheduler(threads: threads).run(tiles, scratchFloats: scratch) { tile, scratch in
                        forwardHead(problem, batch: tile.batch, head: tile.head, q: q, k: k, v: v,
                                    o: out.value.o, lse: out.value.lse, p: out.value.p, scratch: scratch)
                    }
                }
            }
        }
    }

    /// dQ, dK, dV (summed over each group) from the inputs, O, dO and the stored P.
    package static func backward(_ problem: AttentionProblem, q: [Float], k: [Float], v: [Float], o: [Float],
                                dO: [Float], p: [Float], dQ: inout [Float], dK: inout [Float], dV: inout [Float],
                                threads: Int) {
        precondition(StandardAttention.supports(problem) && p.count == StandardAttention.probabilityElements(problem)
                     && dQ.count == problem.queryElements
                     && dK.count == problem.keyElements && dV.count == problem.valueElements,
                     "standard attention: sizes or options do not match")
        let nq = problem.longestQueries, nk = problem.longestKeys
        let (dp, dvp) = (roundUpToLanes(problem.headDim), roundUpToLanes(problem.valueHeadDim))
        let ld = StandardAttention.rowStride(nk)
        let tiles = (0..<problem.batch).flatMap { b in
            (0..<problem.kvHeads).map { Tile(batch: b, head: $0, block: 0, cost: problem.seqlenQ(b) * problem.seqlenK(b)) }
        }
        // dS; Vᵀ, K and the dK, dV sums; Q, dO and dQ rows (`backwardGroup`).
        let scratch = nq * ld + 2 * ld * (dp + dvp) + nq * (2 * dp + dvp) + 8 * lanes
        dQ.withUnsafeMutableBufferPointer { dQ in
            dK.withUnsafeMutableBufferPointer { dK in
                dV.withUnsafeMutableBufferPointer { dV in
                    let out = UncheckedSendable(value: (dQ: dQ.start, dK: dK.start, dV: dV.start))
                    TileScheduler(threads: threads).run(tiles, scratchFloats: scratch) { tile, scratch in
                        backwardGroup(problem, batch: tile.batch, kvHead: tile.head, q: q, k: k, v: v, o: o, dO: dO, p: p,
                                      dQ: out.value.dQ, dK: out.value.dK, dV: out.value.dV, scratch: scratch)
                    }
                }
            }
        }
    }

    /// S of one head into scratch, P = softmax(S) into the stored P, O = P·V.
    private static func forwardHead(_ problem: AttentionProblem, batch b: Int, head h: Int,
                                    q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                    o: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>,
                                    p: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let (nq, nk, d, dv) = (problem.seqlenQ(b), problem.seqlenK(b), problem.headDim, problem.valueHeadDim)
        let (nkp, ld, dvp, kvHead) = (roundUpToLanes(nk), StandardAttention.rowStride(nk), roundUpToLanes(dv), h / problem.groupSize)
        guard nq > 0 else { return }
        var carver = ScratchCarver(scratch)
        let s = carver.take(nq * ld)            // (nq, ld): S of the head
        let kT = carver.take(d * ld)            // (d, ld) in panels of 16 columns: Kᵀ·scale
        let vBlock = carver.take(nkp * dvp)     // (nkp, dvp): V, dense and zero-padded
        let acc = carver.take(nq * dvp)         // (nq, dvp): O = P·V
        let mask = problem.mask(b), probabilities = p + StandardAttention.probabilityOffset(problem, batch: b, head: h)
        let placement = RowPlacement.whole(problem)
        let firstKey = placement.keyIndex(batch: b, key: 0, kvHead: kvHead), kvStride = problem.kvHeads * d
        packTransposed(k + firstKey, sourceStride: kvStride, rows: nk, width: d, into: kT, paddedRows: d, paddedColumns: ld,
                       times: problem.options.softmaxScale)
        // S (nq, nkp) = Q (nq, d) · Kᵀ (d, nkp), a panel of keys at a time.
        for j in stride(from: 0, to: nkp, by: StandardAttention.panel) {
            multiply(m: nq, n: min(StandardAttention.panel, nkp - j), k: d, a: q + placement.queryIndex(batch: b, row: 0, head: h),
                     aRowStride: problem.heads * d, aColumnStride: 1, b: kT + j * d, bRowStride: lanes, bPanelStride: d * lanes,
                     c: s + j, cRowStride: ld,
                     accumulate: false)
        }
        for i in 0..<nq {
            let row = s + i * ld
            maskScores(row, count: nkp, visibleFrom: mask.firstKey(row: i), through: min(mask.lastKey(row: i), nk - 1))
            lse[placement.lseIndex(batch: b, head: h, row: i)] = softmax(row, count: nkp, into: probabilities + i * ld)
        }
        packRows(v + placement.valueIndex(batch: b, key: 0, kvHead: kvHead), sourceStride: problem.kvHeads * dv, rows: nk, width: dv,
                 into: vBlock, paddedWidth: dvp)
        acc.update(repeating: 0, count: nq * dvp)
        // O (nq, dvp) = P (nq, nk) · V (nk, dvp).
        for j in stride(from: 0, to: nk, by: StandardAttention.panel) {
            multiply(m: nq, n: dvp, k: min(StandardAttention.panel, nk - j), a: probabilities + j, aRowStride: ld, aColumnStride: 1,
                     b: vBlock + j * dvp, bRowStride: dvp, c: acc, cRowStride: dvp, accumulate: true)
        }
        for i in 0..<nq {
            (o + placement.outputIndex(batch: b, row: i, head: h)).update(from: acc + i * dvp, count: dv)
        }
    }

    /// One row's softmax of `count` scores (a multiple of the lanes, masked ones −∞) into `p`;
    /// returns the row's lse. A row with every score masked gets P = 0 and lse = −∞.
    private static func softmax(_ scores: UnsafePointer<Float>, count: Int, into p: UnsafeMutablePointer<Float>) -> Float {
        var top = Lanes(repeating: -.infinity)
        for c in stride(from: 0, to: count, by: lanes) { top = larger(top, Lanes.load(scores + c)) }
        let peak = top.max(), pivot = peak == -.infinity ? 0 : peak
        var sums = Lanes.zero
        for c in stride(from: 0, to: count, by: lanes) {
            let e = exp(Lanes.load(scores + c) - Lanes(repeating: pivot))
            e.store(p + c)
            sums += e
        }
        let sum = sums.sum()
        scaleRow(p, count: count, by: sum == 0 ? 0 : 1 / sum)
        return sum == 0 ? -.infinity : pivot + Foundation.log(sum)
    }

    /// The gradients of one kv head: its query heads' dQ, and dK, dV summed over them in head order.
    private static func backwardGroup(_ problem: AttentionProblem, batch b: Int, kvHead: Int,
                                      q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                      o: UnsafePointer<Float>, dO: UnsafePointer<Float>, p: UnsafePointer<Float>,
                                      dQ: UnsafeMutablePointer<Float>, dK: UnsafeMutablePointer<Float>,
                                      dV: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let (nq, nk, d, dv) = (problem.seqlenQ(b), problem.seqlenK(b), problem.headDim, problem.valueHeadDim)
        let (nkp, ld, dp, dvp) = (roundUpToLanes(nk), StandardAttention.rowStride(nk), roundUpToLanes(d), roundUpToLanes(dv))
        let scale = problem.options.softmaxScale
        var carver = ScratchCarver(scratch)
        let dS = carver.take(nq * ld)           // (nq, ld): dP, then dS in place
        let vT = carver.take(dvp * ld)          // (dvp, ld) in panels of 16 columns: Vᵀ
        let kBlock = carver.take(nkp * dp)      // (nkp, dp) in panels of 16 columns: K
        let dKSum = carver.take(nkp * dp)       // (nkp, dp): dK summed over the group, before the scale
        let dVSum = carver.take(nkp * dvp)      // (nkp, dvp): dV summed over the group
        let qBlock = carver.take(nq * dp)       // (nq, dp): Q of one query head
        let dOBlock = carver.take(nq * dvp)     // (nq, dvp): dO of one query head
        let dQBlock = carver.take(nq * dp)      // (nq, dp): dQ of one query head, before the scale
        let placement = RowPlacement.whole(problem)
        let firstKey = placement.keyIndex(batch: b, key: 0, kvHead: kvHead), kvStride = problem.kvHeads * d
        let firstValue = placement.valueIndex(batch: b, key: 0, kvHead: kvHead), valueStride = problem.kvHeads * dv
        let (rowStride, outputStride) = (problem.heads * d, problem.heads * dv)
        packTransposed(v + firstValue, sourceStride: valueStride, rows: nk, width: dv, into: vT, paddedRows: dv, paddedColumns: ld)
        packPanels(k + firstKey, sourceStride: kvStride, rows: nk, width: d, into: kBlock, paddedRows: nkp, paddedWidth: dp)
        dKSum.update(repeating: 0, count: nk * dp)
        dVSum.update(repeating: 0, count: nk * dvp)
        for h in kvHead * problem.groupSize..<(kvHead + 1) * problem.groupSize where nq > 0 {
            let first = placement.queryIndex(batch: b, row: 0, head: h), firstOutput = placement.outputIndex(batch: b, row: 0, head: h)
            let probabilities = p + StandardAttention.probabilityOffset(problem, batch: b, head: h)
            packRows(q + first, sourceStride: rowStride, rows: nq, width: d, into: qBlock, paddedWidth: dp)
            packRows(dO + firstOutput, sourceStride: outputStride, rows: nq, width: dv, into: dOBlock, paddedWidth: dvp)
            // dV (nk, dvp) += Pᵀ (nk, nq) · dO (nq, dvp), Pᵀ read down the columns of P.
            for i in stride(from: 0, to: nq, by: StandardAttention.panel) {
                multiply(m: nk, n: dvp, k: min(StandardAttention.panel, nq - i), a: probabilities + i * ld, aRowStride: 1, aColumnStride: ld,
                         b: dOBlock + i * dvp, bRowStride: dvp, c: dVSum, cRowStride: dvp, accumulate: true)
            }
            // dP (nq, nkp) = dO (nq, dv) · Vᵀ (dv, nkp), then dS = P ∘ (dP − D) in place, D = rowsum(dO ∘ O).
            for j in stride(from: 0, to: nkp, by: StandardAttention.panel) {
                multiply(m: nq, n: min(StandardAttention.panel, nkp - j), k: dv, a: dO + firstOutput, aRowStride: outputStride,
                         aColumnStride: 1, b: vT + j * dv, bRowStride: lanes, bPanelStride: dv * lanes, c: dS + j, cRowStride: ld,
                         accumulate: false)
            }
            for i in 0..<nq {
                let index = firstOutput + i * outputStride
                var delta: Float = 0
                for c in 0..<dv { delta = delta.addingProduct(dO[index + c], o[index + c]) }
                let row = dS + i * ld, pRow = probabilities + i * ld
                for c in stride(from: 0, to: nkp, by: lanes) {
                    (Lanes.load(pRow + c) * (Lanes.load(row + c) - Lanes(repeating: delta))).store(row + c)
                }
            }
            dQBlock.update(repeating: 0, count: nq * dp)
            // dQ (nq, dp) = dS (nq, nk) · K (nk, dp).
            for j in stride(from: 0, to: nk, by: StandardAttention.panel) {
                multiply(m: nq, n: dp, k: min(StandardAttention.panel, nk - j), a: dS + j, aRowStride: ld, aColumnStride: 1,
                         b: kBlock + j * lanes, bRowStride: lanes, bPanelStride: nkp * lanes, c: dQBlock, cRowStride: dp,
                         accumulate: true)
            }
            for i in 0..<nq {
                let to = dQ + first + i * rowStride, from = dQBlock + i * dp
                for c in 0..<d { to[c] = from[c] * scale }
            }
            // dK (nk, dp) += dSᵀ (nk, nq) · Q (nq, dp) (scaled once, at the end).
            for i in stride(from: 0, to: nq, by: StandardAttention.panel) {
                multiply(m: nk, n: dp, k: min(StandardAttention.panel, nq - i), a: dS + i * ld, aRowStride: 1, aColumnStride: ld,
                         b: qBlock + i * dp, bRowStride: dp, c: dKSum, cRowStride: dp, accumulate: true)
            }
        }
        for j in 0..<nk {
            for c in 0..<d { dK[firstKey + j * kvStride + c] = dKSum[j * dp + c] * scale }
            for c in 0..<dv { dV[firstValue + j * valueStride + c] = dVSum[j * dvp + c] }
        }
    }
}
