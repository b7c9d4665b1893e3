import FlashAttention

/// Which rows and keys of the sequence axis each rank of the ring partition holds.
///
/// Query rows are split evenly into contiguous windows in rank order, so rank order is row order
/// and the dK/dV sums can pass from rank to rank in the order one process adds them. Keys are
/// split into contiguous runs of whole key blocks (`WindowAttention.keyBlocks`), so no block is
/// ever cut between ranks. With fewer rows or blocks than ranks, the last ranks hold none.
struct RingLayout {
    let problem: AttentionProblem
    let ranks: Int
    let blocks: [Range<Int>]

    init(_ problem: AttentionProblem, ranks: Int) {
        (self.problem, self.ranks) = (problem, ranks)
        blocks = WindowAttention.keyBlocks(problem)
    }

    func rows(_ rank: Int) -> Range<Int> { EvenSplit(count: problem.sequenceLength(keys: false), parts: ranks).range(rank) }

    /// The key blocks (indices into `blocks`) that `rank` holds.
    func ownedBlocks(_ rank: Int) -> Range<Int> { EvenSplit(count: blocks.count, parts: ranks).range(rank) }

    /// The keys of the sequence axis that `rank` holds.
    func keys(_ rank: Int) -> Range<Int> {
        let owned = ownedBlocks(rank)
        guard let first = owned.first else {
            let start = owned.lowerBound < blocks.count ? blocks[owned.lowerBound].lowerBound : problem.sequenceLength(keys: true)
            return start..<start
        }
        return blocks[first].lowerBound..<blocks[owned.upperBound - 1].upperBound
    }

    func owner(ofBlock block: Int) -> Int { (0..<ranks).first { ownedBlocks($0).contains(block) }! }

    /// The ranks, in row order, whose rows add to the dK/dV of key block `block`.
    func contributors(ofBlock block: Int) -> [Int] {
        let visiting = WindowAttention.rowsVisiting(problem, keys: blocks[block])
        return (0..<ranks).filter { rank in visiting.contains { $0.overlaps(rows(rank)) } }
    }

    /// Whether the forward of `rank`'s rows visits any key `source` holds.
    func forwardNeeds(_ rank: Int, keysOf source: Int) -> Bool {
        let held = keys(source)
        return !held.isEmpty && WindowAttention.keysVisited(problem, rows: rows(rank)).contains { $0.overlaps(held) }
    }

    /// Floats of k or v for `keys` of the sequence axis: `(batch, keys, kvHeads, headDim)`.
    func keyFloats(_ keys: Range<Int>) -> Int {
        keys.count * problem.totalKeys / max(1, problem.sequenceLength(keys: true)) * problem.kvHeads * problem.headDim
    }
}
