import FlashAttentionCore

/// The forward of a window of rows, the keys visited a range at a time in key order
/// (`WindowAttention` says how the work is cut).
package final class WindowForwardPass: WindowForwardKernel {
    let problem: AttentionProblem
    let window: Range<Int>
    let placement: RowPlacement
    let q: [Float]
    let parts: [ForwardParts.Part]
    let threads: Int
    let tiling: Tiling
    /// (parts, stateFloats): one `OnlineSoftmax.State` per part, carried between visits.
    private let state: UnsafeMutablePointer<Float>
    private let stateFloats: Int

    /// Starts the rows `window` of the sequence axis, with their q `(batch, window, heads, headDim)`.
    package init(_ problem: AttentionProblem, rows window: Range<Int>, q: [Float], threads: Int, tiling: Tiling) {
        (self.problem, self.window, self.q, self.threads, self.tiling) = (problem, window, q, threads, tiling)
        placement = RowPlacement(problem, queries: window, keys: 0..<0)
        parts = ForwardParts(problem, rows: window, tiling: tiling).parts
        let tile = Self.tile(problem, placement, tiling, q: nil, k: nil, v: nil)
        stateFloats = tile.stateFloats
        state = .allocate(capacity: max(1, parts.count * stateFloats))
        q.withUnsafeBufferPointer { q in
            let tile = Self.tile(problem, placement, tiling, q: q.baseAddress, k: nil, v: nil)
            for (index, part) in parts.enumerated() {
                tile.begin(batch: part.batch, head: part.head, rows: part.rows, state: OnlineSoftmax.State(state + index * stateFloats, tile))
            }
        }
    }

    deinit { state.deallocate() }

    /// Merges the keys held in k and v, `keys` of the sequence axis `(batch, keys, kvHeads,
    /// headDim)` and `(…, valueHeadDim)`, into the rows that visit them. Called in key order.
    package func visit(keys: Range<Int>, k: UnsafePointer<Float>, v: UnsafePointer<Float>) {
        let tile = Self.tile(problem, placement.with(problem, keys: keys), tiling, q: nil, k: k, v: v)
        let work = parts.indices.compactMap { index -> Tile? in
            let part = parts[index]
            let visited = part.keys.clamped(to: problem.entryRange(part.batch, of: keys, keys: true))
            return visited.isEmpty ? nil : Tile(batch: part.batch, head: part.head, block: index, cost: visited.count)
        }
        TileScheduler(threads: threads).run(work, scratchFloats: tile.bufferFloats) { work, scratch in
            let part = parts[work.block]
            let visited = part.keys.clamped(to: problem.entryRange(part.batch, of: keys, keys: true))
            tile.visit(batch: part.batch, head: part.head, rows: part.rows, keys: visited,
                       state: OnlineSoftmax.State(state + work.block * stateFloats, tile), buffers: OnlineSoftmax.Buffers(scratch, tile))
        }
    }

    /// O `(batch, window, heads, valueHeadDim)` and lse `(batch, heads, window)` once every key has
    /// been visited.
    package func finish() -> (o: [Float], lse: [Float], lseResidual: [Float]) {
        let rows = window.count * problem.totalQueries / max(1, problem.sequenceLength(keys: false))
        var o = [Float](repeating: 0, count: rows * problem.heads * problem.valueHeadDim)
        var lse = [Float](repeating: 0, count: rows * problem.heads), residual = lse
        o.withUnsafeMutableBufferPointer { o in
            lse.withUnsafeMutableBufferPointer { lse in
                residual.withUnsafeMutableBufferPointer { residual in
                    guard let oBase = o.baseAddress, let lseBase = lse.baseAddress else { return }
                    let tile = OnlineSoftmax(problem: problem, placement: placement, q: oBase, k: oBase, v: oBase, o: oBase, lse: lseBase,
                                           lseResidual: residual.baseAddress,
                                           rowsPerTile: tiling.forwardRows(for: problem), keysPerTile: tiling.keyColumns)
                    for (index, part) in parts.enumerated() {
                        tile.finish(batch: part.batch, head: part.head, rows: part.rows, state: OnlineSoftmax.State(state + index * stateFloats, tile))
                    }
                }
            }
        }
        return (o, lse, residual)
    }

    /// A tile over the given arrays; the arrays a step does not read may be any pointer.
    private static func tile(_ problem: AttentionProblem, _ placement: RowPlacement, _ tiling: Tiling, q: UnsafePointer<Float>?,
                             k: UnsafePointer<Float>?, v: UnsafePointer<Float>?) -> OnlineSoftmax {
        let unused = Placeholder.vector
        return OnlineSoftmax(problem: problem, placement: placement, q: q ?? UnsafePointer(unused), k: k ?? UnsafePointer(unused),
                           v: v ?? UnsafePointer(unused), o: unused, lse: unused, lseResidual: nil,
                           rowsPerTile: tiling.forwardRows(for: problem), keysPerTile: tiling.keyColumns)
    }
}

/// The backward of a window of rows, the key blocks visited a range at a time in key order
/// (`WindowAttention` says how the work is cut).
package final class WindowBackwardPass: WindowBackwardKernel {
    let problem: AttentionProblem
    let window: Range<Int>
    let placement: RowPlacement
    let q, o, lse, lseResidual, dO: [Float]
    let threads: Int
    let tiling: Tiling
    /// (batch, heads, window): D = rowsum(dO ∘ O), laid out like lse.
    private var delta: [Float]
    /// (batch, window, heads, dp): dQ before the scale, rows padded to whole vectors.
    private var dQ: [Float]
    /// Each entry's window rows of Q·scale and dO, head by head (index entry · heads + head).
    private let packed: [PackedRows]

    /// The rows `window` with their q `(batch, window, heads, headDim)`, o, dO `(…, valueHeadDim)`
    /// and lse with its residual (zeros when not known) `(batch, heads, window)`.
    package init(_ problem: AttentionProblem, rows window: Range<Int>, q: [Float], o: [Float], lse: [Float], lseResidual: [Float],
                 dO: [Float], threads: Int, tiling: Tiling) {
        (self.problem, self.window, self.q, self.o, self.lse, self.lseResidual, self.dO) = (problem, window, q, o, lse, lseResidual, dO)
        (self.threads, self.tiling) = (threads, tiling)
        placement = RowPlacement(problem, queries: window, keys: 0..<0)
        delta = [Float](repeating: 0, count: lse.count)
        dQ = [Float](repeating: 0, count: lse.count * roundUpToLanes(problem.headDim))
        let placement = placement
        delta.withUnsafeMutableBufferPointer { delta in
            dO.withUnsafeBufferPointer { dO in
                o.withUnsafeBufferPointer { o in
                    guard let deltaBase = delta.baseAddress else { return }
                    rowDotProducts(problem, placement: placement, rows: window, dO: dO.baseAddress!, o: o.baseAddress!, into: deltaBase)
                }
            }
        }
        packed = q.withUnsafeBufferPointer { q in
            dO.withUnsafeBufferPointer { dO in
                (0..<problem.batch).flatMap { b in
                    (0..<problem.heads).map { h in
                        PackedRows(problem, placement: placement, q: q.start, dO: dO.start, batch: b, head: h,
                                   rows: problem.entryRange(b, of: window, keys: false))
                    }
                }
            }
        }
    }

    deinit { for rows in packed { rows.deallocate() } }

    /// Adds this window's rows to the per-head dK and dV sums of `keys` (whole blocks of
    /// `WindowAttention.keyBlocks`, laid out as `partialFloats` says; zeros for the first rows), and
    /// their dS·K to their dQ, one backward key block after the other. k and v hold the keys,
    /// `(batch, keys, kvHeads, headDim)` and `(…, valueHeadDim)`.
    package func accumulate(keys: Range<Int>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, partials: UnsafeMutablePointer<Float>) {
        let layout = PartialLayout(problem, keys: keys)
        let placement = placement.with(problem, keys: keys), problem = problem, window = window
        let (dp, dvp) = (roundUpToLanes(problem.headDim), roundUpToLanes(problem.valueHeadDim))
        let work = layout.entries.indices.flatMap { e in
            (0..<problem.kvHeads).map { Tile(batch: e, head: $0, block: 0, cost: 1) }
        }
        q.withUnsafeBufferPointer { q in
            dO.withUnsafeBufferPointer { dO in
                lse.withUnsafeBufferPointer { lse in
                    lseResidual.withUnsafeBufferPointer { lseResidual in
                        delta.withUnsafeBufferPointer { delta in
                            dQ.withUnsafeMutableBufferPointer { dQ in
                                guard let dQBase = dQ.baseAddress else { return }
                                let tiles = BackwardRecompute(problem: problem, placement: placement, q: q.baseAddress!, k: k, v: v,
                                                          dO: dO.baseAddress!, lse: lse.baseAddress!, lseResidual: lseResidual.baseAddress,
                                                          delta: delta.baseAddress!,
                                                          keyGradients: .summedOverGroup, rowsPerBlock: tiling.backwardRows,
                                                          keysPerBlock: tiling.backwardKeys(for: problem))
                                TileScheduler(threads: threads).run(work, scratchFloats: tiles.scratchFloats) { work, scratch in
                                    let entry = layout.entries[work.batch], b = entry.batch
                                    var carver = ScratchCarver(scratch)
                                    let buf = tiles.buffers(&carver), bc = tiles.keysPerBlock
                                    for start in stride(from: entry.keys.lowerBound, to: entry.keys.upperBound, by: bc) {
                                        let block = start..<min(start + bc, entry.keys.upperBound), skipped = start - entry.keys.lowerBound
                                        tiles.packKeyBlock(batch: b, kvHead: work.head, keys: block, into: buf, transposedOnly: false)
                                        for g in 0..<problem.groupSize {
                                            let h = work.head * problem.groupSize + g
                                            tiles.accumulateHead(batch: b, head: h, keys: block,
                                                                 rows: problem.entryRange(b, of: window, keys: false), buffers: buf,
                                                                 dKHead: partials + layout.offset(work.batch, head: h, value: false) + skipped * dp,
                                                                 dVHead: partials + layout.offset(work.batch, head: h, value: true) + skipped * dvp,
                                                                 dQ: (dQBase, dp), packed: packed[b * problem.heads + h])
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// dQ `(batch, window, heads, headDim)` once every key block has been visited.
    package func finish() -> [Float] {
        let d = problem.headDim, dp = roundUpToLanes(d), scale = problem.options.softmaxScale
        var result = [Float](repeating: 0, count: lse.count * d)
        for row in 0..<lse.count {
            for c in 0..<d { result[row * d + c] = dQ[row * dp + c] * scale }
        }
        return result
    }
}
