/// The kernels for a caller that holds a window of the query rows (`RowPlacement`) and is handed
/// the keys a range at a time, in key order: an MPI rank of the ring partition.
///
/// Every row gets the very additions of a single process: the forward visits, for each row, the
/// key blocks its whole row block visits there (`Tiling.forwardRows` rows, counted from the
/// entry's first row), in key order, carrying the online softmax's state from one range of keys
/// to the next; the backward adds a key block's dS·K into dQ in key order, and a key block's dK
/// and dV over the rows of the `Tiling.queryRows` blocks that see it, in row order, one head at a
/// time, so a caller that hands the per-head sums from the ranks of earlier rows to those of later
/// rows, and adds the heads of a group in order at the end, gets exactly the sums of one pass.
public enum WindowAttention {
    /// The key blocks of the sequence axis, in order: `Tiling.keyColumns` keys from the start of
    /// each batch entry (for a fixed-length batch the same blocks serve every entry).
    public static func keyBlocks(_ problem: AttentionProblem) -> [Range<Int>] {
        let bc = Tiling.keyColumns
        let entries = problem.packedLSE ? Array(0..<problem.batch) : [0]
        return entries.flatMap { b in
            stride(from: 0, to: problem.seqlenK(b), by: bc).map {
                problem.sequenceRange(b, $0..<min($0 + bc, problem.seqlenK(b)), keys: true)
            }
        }
    }

    /// The keys (ranges of the sequence axis, in order) that the forward of the rows in `window`
    /// visits: what a rank holding those rows must be sent.
    public static func keysVisited(_ problem: AttentionProblem, rows window: Range<Int>) -> [Range<Int>] {
        var keys: [Range<Int>] = []
        for part in ForwardParts(problem, rows: window).rowBlocks {
            let range = problem.sequenceRange(part.batch, part.keys, keys: true)
            guard !range.isEmpty else { continue }
            if let last = keys.last, last.upperBound >= range.lowerBound {
                keys[keys.count - 1] = min(last.lowerBound, range.lowerBound)..<max(last.upperBound, range.upperBound)
            } else {
                keys.append(range)
            }
        }
        return keys
    }

    /// The rows (ranges of the sequence axis) whose dK/dV contributions to key block `keys` the
    /// backward adds: every row of the `Tiling.queryRows` blocks that see some key of it.
    public static func rowsVisiting(_ problem: AttentionProblem, keys: Range<Int>) -> [Range<Int>] {
        let br = Tiling.queryRows
        return (0..<problem.batch).compactMap { b in
            let mask = problem.mask(b)
            let seen = mask.rows(seeing: problem.entryRange(b, of: keys, keys: true))
            guard !seen.isEmpty else { return nil }
            let rows = seen.lowerBound / br * br..<min((seen.upperBound + br - 1) / br * br, mask.seqlenQ)
            return problem.sequenceRange(b, rows, keys: false)
        }
    }

    /// Floats of the per-head dK and dV sums of key block `keys`, which pass from rank to rank.
    public static func partialFloats(_ problem: AttentionProblem, keys: Range<Int>) -> Int {
        let dp = roundUpToLanes(problem.headDim)
        return (0..<problem.batch).reduce(0) { $0 + 2 * problem.heads * problem.entryRange($1, of: keys, keys: true).count * dp }
    }

    /// dK and dV of key block `keys`, `(entries, keys.count, kvHeads, headDim)`, from the complete
    /// per-head sums: the heads of each group added in order from zero, as one process adds them.
    /// With `.perQueryHead`, `(entries, keys.count, heads, headDim)`: each head's own sum, for a
    /// caller that adds a group split between ranks.
    public static func keyGradients(_ problem: AttentionProblem, keys: Range<Int>, partials: UnsafePointer<Float>,
                                    layout gradients: KeyGradientLayout = .summedOverGroup) -> (dK: [Float], dV: [Float]) {
        let d = problem.headDim, dp = roundUpToLanes(d), layout = PartialLayout(problem, keys: keys)
        let heads = gradients == .perQueryHead ? problem.heads : problem.kvHeads
        var dK = [Float](repeating: 0, count: layout.entries.count * keys.count * heads * d), dV = dK
        if gradients == .perQueryHead {
            for (e, entry) in layout.entries.enumerated() {
                for h in 0..<heads {
                    let (k, v) = (partials + layout.offset(e, head: h, value: false), partials + layout.offset(e, head: h, value: true))
                    for t in 0..<entry.keys.count {
                        let index = ((e * keys.count + t) * heads + h) * d
                        for c in 0..<d { dK[index + c] = k[t * dp + c]; dV[index + c] = v[t * dp + c] }
                    }
                }
            }
            return (dK, dV)
        }
        let sum = UnsafeMutablePointer<Float>.allocate(capacity: 2 * keys.count * dp)
        defer { sum.deallocate() }
        for (e, entry) in layout.entries.enumerated() {
            for kvHead in 0..<problem.kvHeads {
                sum.update(repeating: 0, count: 2 * entry.keys.count * dp)
                for g in 0..<problem.groupSize {
                    let h = kvHead * problem.groupSize + g
                    addBlock(partials + layout.offset(e, head: h, value: false), into: sum, count: entry.keys.count * dp)
                    addBlock(partials + layout.offset(e, head: h, value: true), into: sum + entry.keys.count * dp,
                             count: entry.keys.count * dp)
                }
                for t in 0..<entry.keys.count {
                    let index = ((e * keys.count + t) * problem.kvHeads + kvHead) * d
                    for c in 0..<d {
                        dK[index + c] = sum[t * dp + c]
                        dV[index + c] = sum[(entry.keys.count + t) * dp + c]
                    }
                }
            }
        }
        return (dK, dV)
    }
}

/// Where each (entry, head) sum of a key block sits among its partials: for each entry that has
/// keys in the block, for each head, dK then dV, `keys × paddedDim` floats each.
struct PartialLayout {
    let entries: [(batch: Int, keys: Range<Int>)]
    let offsets: [Int]
    let heads, paddedDim: Int

    init(_ problem: AttentionProblem, keys: Range<Int>) {
        entries = (0..<problem.batch).compactMap { b in
            let part = problem.entryRange(b, of: keys, keys: true)
            return part.isEmpty ? nil : (b, part)
        }
        (heads, paddedDim) = (problem.heads, roundUpToLanes(problem.headDim))
        var offsets: [Int] = [], next = 0
        for entry in entries {
            offsets.append(next)
            next += 2 * heads * entry.keys.count * paddedDim
        }
        self.offsets = offsets
    }

    func offset(_ e: Int, head h: Int, value: Bool) -> Int {
        offsets[e] + (2 * h + (value ? 1 : 0)) * entries[e].keys.count * paddedDim
    }
}

/// The forward's tiles for a window of rows: per entry and head, the part of each row block in
/// the window, with the keys the whole block visits.
struct ForwardParts {
    struct Part {
        let batch, head: Int
        let rows, keys: Range<Int>
    }
    let rowBlocks: [Part]
    let parts: [Part]

    init(_ problem: AttentionProblem, rows window: Range<Int>) {
        let br = Tiling.forwardRows(problem)
        var blocks: [Part] = []
        for b in 0..<problem.batch {
            let mine = problem.entryRange(b, of: window, keys: false), mask = problem.mask(b)
            var start = mine.lowerBound / br * br
            while start < mine.upperBound {
                let block = start..<min(start + br, mask.seqlenQ)
                blocks.append(Part(batch: b, head: 0, rows: block.clamped(to: mine), keys: mask.keys(seenBy: block)))
                start += br
            }
        }
        rowBlocks = blocks
        parts = blocks.flatMap { block in
            (0..<problem.heads).map { Part(batch: block.batch, head: $0, rows: block.rows, keys: block.keys) }
        }
    }
}

/// The forward of a window of rows, the keys visited a range at a time in key order.
public final class WindowForward {
    let problem: AttentionProblem
    let window: Range<Int>
    let placement: RowPlacement
    let q: [Float]
    let parts: [ForwardParts.Part]
    let threads: Int
    private let state: UnsafeMutablePointer<Float>
    private let stateFloats: Int

    /// Starts the rows `window` of the sequence axis, with their q `(batch, window, heads, headDim)`.
    public init(_ problem: AttentionProblem, rows window: Range<Int>, q: [Float], threads: Int) {
        (self.problem, self.window, self.q, self.threads) = (problem, window, q, threads)
        placement = RowPlacement(problem, queries: window, keys: 0..<0)
        parts = ForwardParts(problem, rows: window).parts
        let tile = Self.tile(problem, placement, q: nil, k: nil, v: nil)
        stateFloats = tile.stateFloats
        state = .allocate(capacity: max(1, parts.count * stateFloats))
        q.withUnsafeBufferPointer { q in
            let tile = Self.tile(problem, placement, q: q.baseAddress, k: nil, v: nil)
            for (index, part) in parts.enumerated() {
                tile.begin(batch: part.batch, head: part.head, rows: part.rows, state: ForwardTile.State(state + index * stateFloats, tile))
            }
        }
    }

    deinit { state.deallocate() }

    /// Merges the keys `only` (whole key blocks, by default all) of those held in k and v,
    /// `keys` of the sequence axis `(batch, keys, kvHeads, headDim)`, into the rows that visit
    /// them. Called in key order.
    public func visit(keys: Range<Int>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, only: Range<Int>? = nil) {
        let tile = Self.tile(problem, placement.with(problem, keys: keys), q: nil, k: k, v: v)
        let keys = only ?? keys
        let work = parts.indices.compactMap { index -> Tile? in
            let part = parts[index]
            let visited = part.keys.clamped(to: problem.entryRange(part.batch, of: keys, keys: true))
            return visited.isEmpty ? nil : Tile(batch: part.batch, head: part.head, block: index, cost: visited.count)
        }
        TileScheduler(threads: threads).run(work, scratchFloats: tile.bufferFloats) { work, scratch in
            let part = parts[work.block]
            let visited = part.keys.clamped(to: problem.entryRange(part.batch, of: keys, keys: true))
            tile.visit(batch: part.batch, head: part.head, rows: part.rows, keys: visited,
                       state: ForwardTile.State(state + work.block * stateFloats, tile), buffers: ForwardTile.Buffers(scratch, tile))
        }
    }

    /// O `(batch, window, heads, headDim)` and lse `(batch, heads, window)` once every key has
    /// been visited.
    public func finish() -> (o: [Float], lse: [Float]) {
        let rows = window.count * problem.totalQueries / max(1, problem.sequenceLength(keys: false))
        var o = [Float](repeating: 0, count: rows * problem.heads * problem.headDim)
        var lse = [Float](repeating: 0, count: rows * problem.heads)
        o.withUnsafeMutableBufferPointer { o in
            lse.withUnsafeMutableBufferPointer { lse in
                guard let oBase = o.baseAddress, let lseBase = lse.baseAddress else { return }
                let tile = ForwardTile(problem: problem, placement: placement, q: oBase, k: oBase, v: oBase, o: oBase, lse: lseBase,
                                       rowsPerTile: Tiling.forwardRows(problem),
                           keysPerTile: Tiling.keyColumns)
                for (index, part) in parts.enumerated() {
                    tile.finish(batch: part.batch, head: part.head, rows: part.rows, state: ForwardTile.State(state + index * stateFloats, tile))
                }
            }
        }
        return (o, lse)
    }

    /// A tile over the given arrays; the arrays a step does not read may be any pointer.
    private static func tile(_ problem: AttentionProblem, _ placement: RowPlacement, q: UnsafePointer<Float>?,
                             k: UnsafePointer<Float>?, v: UnsafePointer<Float>?) -> ForwardTile {
        let unused = UnsafeMutablePointer<Float>(bitPattern: 64)!
        return ForwardTile(problem: problem, placement: placement, q: q ?? UnsafePointer(unused), k: k ?? UnsafePointer(unused),
                           v: v ?? UnsafePointer(unused), o: unused, lse: unused, rowsPerTile: Tiling.forwardRows(problem),
                           keysPerTile: Tiling.keyColumns)
    }
}

/// The backward of a window of rows, the key blocks visited one at a time in key order.
public final class WindowBackward {
    let problem: AttentionProblem
    let window: Range<Int>
    let placement: RowPlacement
    let q, o, lse, dO: [Float]
    let threads: Int
    private var delta: [Float]
    /// dQ before the scale, rows padded to whole vectors.
    private var dQ: [Float]

    /// The rows `window` with their q, o, dO `(batch, window, heads, headDim)` and lse
    /// `(batch, heads, window)`.
    public init(_ problem: AttentionProblem, rows window: Range<Int>, q: [Float], o: [Float], lse: [Float], dO: [Float],
                threads: Int) {
        (self.problem, self.window, self.q, self.o, self.lse, self.dO, self.threads) = (problem, window, q, o, lse, dO, threads)
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
    }

    /// Adds this window's rows to the per-head dK and dV sums of key block `keys` (laid out as
    /// `partialFloats` says; zeros for the first rows), and the block's dS·K to their dQ. k and v
    /// hold the block, `(batch, keys, kvHeads, headDim)`.
    public func accumulate(keys: Range<Int>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, partials: UnsafeMutablePointer<Float>) {
        let layout = PartialLayout(problem, keys: keys)
        let placement = placement.with(problem, keys: keys), problem = problem, window = window
        let dp = roundUpToLanes(problem.headDim)
        let work = layout.entries.indices.flatMap { e in
            (0..<problem.kvHeads).map { Tile(batch: e, head: $0, block: 0, cost: 1) }
        }
        q.withUnsafeBufferPointer { q in
            dO.withUnsafeBufferPointer { dO in
                lse.withUnsafeBufferPointer { lse in
                    delta.withUnsafeBufferPointer { delta in
                        dQ.withUnsafeMutableBufferPointer { dQ in
                            guard let dQBase = dQ.baseAddress else { return }
                            let tiles = BackwardTiles(problem: problem, placement: placement, q: q.baseAddress!, k: k, v: v,
                                                      dO: dO.baseAddress!, lse: lse.baseAddress!, delta: delta.baseAddress!,
                                                      keyGradients: .summedOverGroup)
                            TileScheduler(threads: threads).run(work, scratchFloats: tiles.scratchFloats) { work, scratch in
                                let entry = layout.entries[work.batch], b = entry.batch
                                var carver = ScratchCarver(scratch)
                                let buf = BackwardTiles.Buffers(&carver, paddedDim: dp)
                                tiles.packKeyBlock(batch: b, kvHead: work.head, keys: entry.keys, into: buf, transposedOnly: false)
                                for g in 0..<problem.groupSize {
                                    let h = work.head * problem.groupSize + g
                                    tiles.accumulateHead(batch: b, head: h, keys: entry.keys,
                                                         rows: problem.entryRange(b, of: window, keys: false), buffers: buf,
                                                         dKHead: partials + layout.offset(work.batch, head: h, value: false),
                                                         dVHead: partials + layout.offset(work.batch, head: h, value: true),
                                                         dQ: (dQBase, dp))
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// dQ `(batch, window, heads, headDim)` once every key block has been visited.
    public func finish() -> [Float] {
        let d = problem.headDim, dp = roundUpToLanes(d), scale = problem.options.softmaxScale
        var result = [Float](repeating: 0, count: lse.count * d)
        for row in 0..<lse.count {
            for c in 0..<d { result[row * d + c] = dQ[row * dp + c] * scale }
        }
        return result
    }
}
