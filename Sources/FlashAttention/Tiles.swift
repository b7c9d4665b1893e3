/// Tile sizes. A tile is a block of rows of one head against `keyColumns` keys at a time. The
/// backward's row blocks are `queryRows`: with D = 128 its packed blocks are 32 KiB each and stay
/// in L2 while a 64 × 64 block of P or dS (16 KiB) stays in L1.
///
/// The forward streams every key and value of its head once per row block, so its row blocks grow
/// with the keys: once K and V of all heads outgrow L3 (around 8192 keys here) 64 rows would wait
/// on memory, while on short causal problems big blocks waste work on the diagonal. A row's result
/// does not depend on the block it is computed in, so this choice never changes a bit.
enum Tiling {
    static let queryRows = 64
    static let keyColumns = 64

    static func forwardRows(_ problem: AttentionProblem) -> Int {
        if let rows = problem.options.forwardTiles?.rows { return rows }
        let keys = (0..<problem.batch).map(problem.seqlenK).max() ?? 0
        return keys < 2048 ? 64 : keys < 8192 ? 128 : 256
    }

    static func forwardKeys(_ problem: AttentionProblem) -> Int { problem.options.forwardTiles?.keys ?? keyColumns }
}

/// One unit of scheduled work: a block of rows (or keys) of one head of one batch entry.
struct Tile {
    let batch: Int
    let head: Int
    let block: Int
    /// Relative cost (blocks visited): under a causal mask tiles differ by up to 2×.
    let cost: Int

    /// One tile per block of `rows` rows of each query head; its cost is the key blocks its rows see.
    static func rowTiles(_ problem: AttentionProblem, rows: Int) -> [Tile] {
        var tiles: [Tile] = []
        for b in 0..<problem.batch {
            let mask = problem.mask(b)
            for block in 0..<blockCount(mask.seqlenQ, rows) {
                let keys = mask.keys(seenBy: rowBlock(block, of: mask, rows: rows))
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

    static func rowBlock(_ block: Int, of mask: AttentionMask, rows: Int) -> Range<Int> {
        block * rows..<min((block + 1) * rows, mask.seqlenQ)
    }

    static func keyBlock(_ block: Int, of mask: AttentionMask) -> Range<Int> {
        block * Tiling.keyColumns..<min((block + 1) * Tiling.keyColumns, mask.seqlenK)
    }

    private static func blockCount(_ n: Int, _ size: Int) -> Int { (n + size - 1) / size }
}
