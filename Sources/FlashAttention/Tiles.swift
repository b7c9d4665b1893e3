/// Tile sizes. A tile is `queryRows` rows of one head against `keyColumns` keys at a time: with
/// D = 128 the packed Q, Kᵀ, V and the accumulator are 32 KiB each and stay in L2 while the
/// current score block (16 KiB) stays in L1.
enum Tiling {
    static let queryRows = 64
    static let keyColumns = 64
}

/// One unit of scheduled work: a block of rows (or keys) of one head of one batch entry.
struct Tile {
    let batch: Int
    let head: Int
    let block: Int
    /// Relative cost (blocks visited): under a causal mask tiles differ by up to 2×.
    let cost: Int

    /// One tile per row block of each query head; its cost is the key blocks its rows see.
    static func rowTiles(_ problem: AttentionProblem) -> [Tile] {
        var tiles: [Tile] = []
        for b in 0..<problem.batch {
            let mask = problem.mask(b)
            for block in 0..<blockCount(mask.seqlenQ, Tiling.queryRows) {
                let keys = mask.keys(seenBy: rowBlock(block, of: mask))
                let cost = 1 + blockCount(keys.count, Tiling.keyColumns)
                for h in 0..<problem.heads { tiles.append(Tile(batch: b, head: h, block: block, cost: cost)) }
            }
        }
        return tiles
    }

    /// One tile per key block of each kv head; its cost is the row blocks of its group that see it.
    static func keyTiles(_ problem: AttentionProblem) -> [Tile] {
        var tiles: [Tile] = []
        for b in 0..<problem.batch {
            let mask = problem.mask(b)
            for block in 0..<keyBlockCount(mask) {
                let rows = mask.rows(seeing: keyBlock(block, of: mask))
                let cost = 1 + problem.groupSize * blockCount(rows.count, Tiling.queryRows)
                for kvHead in 0..<problem.kvHeads { tiles.append(Tile(batch: b, head: kvHead, block: block, cost: cost)) }
            }
        }
        return tiles
    }

    /// One tile per kv head of each batch entry, for the fused backward; its cost is the row
    /// blocks that its key blocks see, over the group.
    static func groupTiles(_ problem: AttentionProblem) -> [Tile] {
        var tiles: [Tile] = []
        for b in 0..<problem.batch {
            let mask = problem.mask(b)
            let cost = (0..<keyBlockCount(mask)).reduce(1) {
                $0 + problem.groupSize * blockCount(mask.rows(seeing: keyBlock($1, of: mask)).count, Tiling.queryRows)
            }
            for kvHead in 0..<problem.kvHeads { tiles.append(Tile(batch: b, head: kvHead, block: 0, cost: cost)) }
        }
        return tiles
    }

    static func keyBlockCount(_ mask: AttentionMask) -> Int { blockCount(mask.seqlenK, Tiling.keyColumns) }

    static func rowBlock(_ block: Int, of mask: AttentionMask) -> Range<Int> {
        block * Tiling.queryRows..<min((block + 1) * Tiling.queryRows, mask.seqlenQ)
    }

    static func keyBlock(_ block: Int, of mask: AttentionMask) -> Range<Int> {
        block * Tiling.keyColumns..<min((block + 1) * Tiling.keyColumns, mask.seqlenK)
    }

    private static func blockCount(_ n: Int, _ size: Int) -> Int { (n + size - 1) / size }
}
