import Dispatch
import FlashAttentionCore
import Synchronization

/// The entry points `FlashAttention` calls. This folder is compiled twice (FlashKernelsAVX2 and
/// FlashKernelsAVX512, see Package.swift), so there is one `Kernels` per instruction set.
package enum Kernels {
    package static func forward(_ problem: AttentionProblem,
                                q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                o: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>,
                                lseResidual: UnsafeMutablePointer<Float>?, threads: Int, tiling: Tiling) {
        let tiles = OnlineSoftmax(problem: problem, placement: .whole(problem), q: q, k: k, v: v, o: o, lse: lse, lseResidual: lseResidual,
                                rowsPerTile: tiling.forwardRows(for: problem), keysPerTile: tiling.keyColumns)
        TileScheduler(threads: threads).run(Tile.rowTiles(problem, rows: tiles.rowsPerTile, keyColumns: tiling.keyColumns),
                                            scratchFloats: tiles.scratchFloats, inOrder: true) { tile, scratch in
            tiles.run(tile, scratch: scratch)
        }
    }

    package static func backward(_ problem: AttentionProblem,
                                 q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                 o: UnsafePointer<Float>, lse: UnsafePointer<Float>, lseResidual: UnsafePointer<Float>?,
                                 dO: UnsafePointer<Float>, dQ: UnsafeMutablePointer<Float>, dK: UnsafeMutablePointer<Float>,
                                 dV: UnsafeMutablePointer<Float>, keyGradients: KeyGradientLayout,
                                 threads: Int, tiling: Tiling) {
        let delta = UnsafeMutablePointer<Float>.allocate(capacity: max(1, problem.lseElements))
        defer { delta.deallocate() }
        rowDotProducts(problem, placement: .whole(problem), rows: 0..<problem.sequenceLength(keys: false), dO: dO, o: o, into: delta)
        let (rows, keys) = (tiling.backwardRows, tiling.backwardKeys(for: problem))
        let tiles = BackwardRecompute(problem: problem, placement: .whole(problem), q: q, k: k, v: v, dO: dO, lse: lse, lseResidual: lseResidual, delta: delta,
                                  keyGradients: keyGradients, rowsPerBlock: rows, keysPerBlock: keys)
        let scheduler = TileScheduler(threads: threads)
        // One fused pass per (batch, kv head) when there are enough of them to share out evenly;
        // otherwise a dK/dV pass over key blocks and a dQ pass over row blocks. Both add every
        // product in the same order, so the choice (which depends on the thread count) never
        // changes a bit of the result.
        let groups = problem.batch * problem.kvHeads
        if problem.headDim % lanes == 0 && groups >= threads && (groups % threads == 0 || groups >= 4 * threads) {
            scheduler.run(Tile.groupTiles(problem, rows: rows, keys: keys), scratchFloats: tiles.scratchFloats) { tile, scratch in
                tiles.runGroupTile(tile, scratch: scratch, dQ: dQ, dK: dK, dV: dV)
            }
        } else {
            scheduler.run(Tile.keyTiles(problem, rows: rows, keys: keys), scratchFloats: tiles.scratchFloats) { tile, scratch in
                tiles.runKeyTile(tile, scratch: scratch, dK: dK, dV: dV)
            }
            scheduler.run(Tile.rowTiles(problem, rows: rows, keyColumns: keys),
                          scratchFloats: tiles.scratchFloats, inOrder: true) { tile, scratch in
                tiles.runQueryTile(tile, scratch: scratch, dQ: dQ)
            }
        }
    }

    /// Dropout keep factors of one head, queries × keys, rows `rowStride` apart (a whole number
    /// of vectors of keys).
    package static func keepFactors(_ problem: AttentionProblem, batch: Int, head: Int,
                                    into factors: UnsafeMutablePointer<Float>, rowStride: Int) {
        ScoreModifiers(problem: problem).keepFactorsQueryMajor(
            into: factors, rowStride: rowStride, batch: batch, head: head,
            queries: 0..<problem.seqlenQ(batch), keys: 0..<problem.seqlenK(batch), paddedKeys: rowStride)
    }

    /// The fp32 FMA throughput of `threads` threads with this instruction set, in GFLOP/s: each
    /// runs twelve independent FMA chains of one register each (enough to cover FMA latency on two
    /// pipes), so the loop measures the arithmetic units and nothing else. The best of five short
    /// trials: on a shared machine a neighbour or a late thread only ever slows a trial down (one
    /// long trial read anywhere from 178 to 229 GFLOP/s on a 2-core Zen 4 VM).
    package static func fmaPeakGFLOPS(threads: Int) -> Double {
        (0..<5).map { _ in fmaTrialGFLOPS(threads: threads, iterations: 8_000_000 / (Register.scalarCount / 8)) }.max()!
    }

    private static func fmaTrialGFLOPS(threads: Int, iterations: Int) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        let sink = Mutex<Float>(0)
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            let x = Register(repeating: 0.999_999), y = Register(repeating: 1e-7)
            var a0 = Register(repeating: 1), a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3, a4 = a0 + 4, a5 = a0 + 5
            var a6 = a0 + 6, a7 = a0 + 7, a8 = a0 + 8, a9 = a0 + 9, a10 = a0 + 10, a11 = a0 + 11
            for _ in 0..<iterations {
                a0 = a0.addingProduct(a0, x); a1 = a1.addingProduct(a1, x); a2 = a2.addingProduct(a2, x)
                a3 = a3.addingProduct(a3, x); a4 = a4.addingProduct(a4, x); a5 = a5.addingProduct(a5, x)
                a6 = a6.addingProduct(a6, y); a7 = a7.addingProduct(a7, y); a8 = a8.addingProduct(a8, y)
                a9 = a9.addingProduct(a9, y); a10 = a10.addingProduct(a10, y); a11 = a11.addingProduct(a11, y)
            }
            let total = (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11).sum()
            sink.withLock { $0 += total }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Double(threads * iterations * 12 * Register.scalarCount * 2) / seconds / 1e9
    }
}
