import FlashAttention

/// Which rows and keys of the sequence axis each rank of the ring partition holds.
///
/// Query rows are cut into even chunks. Where every row sees about as many keys (no mask, or a
/// window bounded on both sides) rank r holds chunk r of P. Where the keys seen grow or shrink
/// along the rows (causal, or a window open on one side), the last rows of a contiguous split
/// would do about twice the average work, so the rows are zigzagged: `passes` · P chunks, dealt
/// to the ranks forwards, backwards, forwards…, so rank r holds chunks r, 2P − 1 − r, 2P + r, …
/// and every rank gets the same work. Two passes would balance the totals; the backward's
/// pipeline also needs every key block's rows (those below it) spread evenly, or ranks wait on
/// one another block by block, and four passes do that within about 10% (two: 25–40%), for
/// twice the dK/dV sums on the wire. Keys are split into contiguous runs of whole key blocks
/// (`WindowAttention.keyBlocks` of the tiles all ranks agreed on), so no block is ever cut
/// between ranks. With fewer rows or blocks than ranks, some ranks hold none.
package struct RingLayout {
    package let problem: AttentionProblem
    package let ranks: Int
    package let tiling: Tiling
    package let blocks: [Range<Int>]
    package let zigzag: Bool

    package init(_ problem: AttentionProblem, ranks: Int, tiling: Tiling) {
        (self.problem, self.ranks, self.tiling) = (problem, ranks, tiling)
        blocks = WindowAttention.keyBlocks(problem, tiling: tiling)
        let options = problem.options
        let right = options.causal ? 0 : options.windowRight
        zigzag = ranks > 1 && (options.windowLeft < 0) != (right < 0)
    }

    /// Zigzag passes over the ranks.
    package static let passes = 4

    /// Windows each rank holds.
    package var windowCount: Int { zigzag ? Self.passes : 1 }

    /// Chunks of the rows, in row order.
    private var chunks: EvenSplit { EvenSplit(count: problem.sequenceLength(keys: false), parts: windowCount * ranks) }

    /// The chunks `rank` holds, in row order.
    package func chunkIndices(_ rank: Int) -> [Int] {
        (0..<windowCount).map { pass in pass % 2 == 0 ? pass * ranks + rank : (pass + 1) * ranks - 1 - rank }
    }

    /// The rows of the sequence axis that `rank` holds, window by window in row order.
    package func windows(_ rank: Int) -> [Range<Int>] { chunkIndices(rank).map { chunks.range($0) } }

    /// A rank's window, as a link of the chain that passes a key block's dK/dV sums in row order.
    package struct Link: Equatable {
        package let rank, window: Int
        /// The place of the window's rows among all non-empty windows in row order: the stage of
        /// the pipeline it works in.
        package let stage: Int
    }

    /// The key blocks (indices into `blocks`) that `rank` holds.
    package func ownedBlocks(_ rank: Int) -> Range<Int> { EvenSplit(count: blocks.count, parts: ranks).range(rank) }

    /// The keys of the sequence axis that `rank` holds.
    package func keys(_ rank: Int) -> Range<Int> {
        let owned = ownedBlocks(rank)
        guard let first = owned.first else {
            let start = owned.lowerBound < blocks.count ? blocks[owned.lowerBound].lowerBound : problem.sequenceLength(keys: true)
            return start..<start
        }
        return blocks[first].lowerBound..<blocks[owned.upperBound - 1].upperBound
    }

    package func owner(ofBlock block: Int) -> Int { (0..<ranks).first { ownedBlocks($0).contains(block) }! }

    /// Every non-empty window of every rank, in row order.
    package var links: [Link] {
        let all = (0..<ranks).flatMap { rank in windows(rank).indices.map { (rank: rank, window: $0, rows: windows(rank)[$0]) } }
        return all.filter { !$0.rows.isEmpty }.sorted { $0.rows.lowerBound < $1.rows.lowerBound }.enumerated().map {
            Link(rank: $1.rank, window: $1.window, stage: $0)
        }
    }

    /// The windows, in row order, whose rows add to the dK/dV of key block `block`.
    package func contributors(ofBlock block: Int, links: [Link]) -> [Link] {
        let visiting = WindowAttention.rowsVisiting(problem, keys: blocks[block], tiling: tiling)
        return links.filter { link in visiting.contains { $0.overlaps(windows(link.rank)[link.window]) } }
    }

    /// Whether the forward passes keys from rank to rank around the ring, rather than each owner
    /// sending its keys straight to every rank that needs them. It does where every rank with rows
    /// needs every other rank's keys (no sliding window, one sequence) and there are more than two
    /// ranks: every rank visits the blocks in key order, so all of them want the same block at
    /// about the same time, and sent straight a block would leave its owner's link R − 1 times
    /// while they wait; passed on, each link carries each block once. The bytes each rank sends
    /// stay about the same (every block but the next rank's own, instead of its own R − 1 times).
    package var relaysKeys: Bool {
        guard ranks > 2 else { return false }
        let held = (0..<ranks).map(keys).filter { !$0.isEmpty }
        return (0..<ranks).allSatisfy { rank in
            let visited = windows(rank).flatMap { WindowAttention.keysVisited(problem, rows: $0, tiling: tiling) }
            return visited.isEmpty || held.allSatisfy { keys in visited.contains { $0.overlaps(keys) } }
        }
    }

    /// Whether the forward of `rank`'s rows visits any key `source` holds.
    package func forwardNeeds(_ rank: Int, keysOf source: Int) -> Bool {
        let held = keys(source)
        return !held.isEmpty && windows(rank).contains { window in
            WindowAttention.keysVisited(problem, rows: window, tiling: tiling).contains { $0.overlaps(held) }
        }
    }

    /// Floats of k for `keys` of the sequence axis: `(batch, keys, kvHeads, headDim)`.
    package func keyFloats(_ keys: Range<Int>) -> Int { floats(keys, width: problem.headDim) }
    /// Floats of v: `(batch, keys, kvHeads, valueHeadDim)`.
    package func valueFloats(_ keys: Range<Int>) -> Int { floats(keys, width: problem.valueHeadDim) }

    private func floats(_ keys: Range<Int>, width: Int) -> Int {
        keys.count * problem.totalKeys / max(1, problem.sequenceLength(keys: true)) * problem.kvHeads * width
    }
}
