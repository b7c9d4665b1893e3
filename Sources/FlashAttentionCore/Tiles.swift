import Foundation
import Synchronization

/// Tile sizes, chosen at run time from the CPU's caches: how many query rows a tile of the forward
/// and of the backward holds, and how many keys each of their blocks takes. All are multiples of
/// 16 (one vector of floats).
///
/// Only the forward's `keyColumns` changes results: the forward rescales its running max and sum
/// at the end of every key block. A row's result does not depend on the row block it is computed
/// in, and every product sums over its inner dimension in one order whatever the blocks, so the
/// other sizes never change a bit. Callers that must reproduce another process's bits (MPI ranks,
/// ring attention) use that process's `keyColumns`.
public struct Tiling: Sendable, Equatable {
    /// Keys per block of the forward.
    public var keyColumns: Int
    /// Query rows per block of the backward.
    public var backwardRows: Int
    /// Keys per block of the backward and rows of a forward tile; nil lets `backwardKeys(for:)`
    /// and `forwardRows(for:)` pick them per problem from the caches.
    public var backwardKeys: Int?
    public var forwardRows: Int?
    public var caches: CacheSizes
    /// Cores the work is spread over: `forwardRows(for:)` keeps a few tiles per core.
    public var cores: Int

    public init(keyColumns: Int = 64, backwardRows: Int = 64, backwardKeys: Int? = nil, forwardRows: Int? = nil,
                caches: CacheSizes, cores: Int = ProcessInfo.processInfo.activeProcessorCount) {
        self.keyColumns = keyColumns
        self.backwardRows = backwardRows
        self.backwardKeys = backwardKeys
        self.forwardRows = forwardRows
        self.caches = caches
        self.cores = cores
    }

    public static func fitted(to caches: CacheSizes) -> Tiling { Tiling(caches: caches) }

    /// The backward walks the key blocks of a head and, for each, every row block that sees it,
    /// packing those rows of Q and dO afresh: the fewer key blocks, the fewer times Q and dO come
    /// in from L3, their rows heads·D floats apart. So its key blocks are the widest of 256, 128
    /// and 64 keys whose blocks that every row block goes back to still fit in L2. (Measured on a
    /// Zen 4, 1 MiB L2, N = 4096, 2 threads: 256 keys against 128 take 7% less time at D = 64 and
    /// 10% less at D = 128; 512 at D = 64 gains nothing more. The forward's key block stays 64: a
    /// 64 × 64 block of scores, 16 KiB, stays in L1 beside the vector it multiplies.) Under a causal
    /// mask a key block is at most an eighth of the keys: 128 keys against 256 at N = 1024 were
    /// 6–9% faster while the row blocks on the diagonal computed the whole key block; now that they
    /// compute only the key panels they see, the two are within noise there (AVX2 +3.5% for 256,
    /// 0.97–1.08; AVX-512 −3.6%, 0.90–1.09), and the narrower block stays.
    package func backwardKeys(for problem: AttentionProblem) -> Int {
        if let backwardKeys { return backwardKeys }
        let (dp, dvp) = (roundUpToLanes(problem.headDim), roundUpToLanes(problem.valueHeadDim))
        // Per key packed Kᵀ, K and one head's dK (D wide), Vᵀ and one head's dV (Dv wide); Q and dO
        // per row; P and dS per pair. (The group's dK and dV sums are touched once per head.)
        let bytes = { (keys: Int) in 4 * (keys * (3 * dp + 2 * dvp) + backwardRows * (dp + dvp) + 2 * backwardRows * keys) }
        let narrow = { (keys: Int) in !problem.options.causal || 8 * keys <= problem.longestKeys }
        return [256, 128].first { bytes($0) <= caches.l2 && narrow($0) } ?? 64
    }

    /// The forward streams every key and value of its head once per row block, and packs each key
    /// block afresh for it, so the bigger the block the fewer times each key comes in. While one
    /// head's K and V fit in L2 they come from there and 256 rows do; beyond, up to 1024, as many
    /// rows as keep the tile's Qᵀ and output accumulator within half of L2 (its scores are 32
    /// queries at a time, and a causal tile skips the key blocks those queries do not see).
    /// Smaller blocks only where the problem would otherwise have fewer than four tiles per core.
    /// (Zen 4, 1 MiB L2, 2 threads, D = 64, alternating runs: 1024 rows against 256 at N = 4096
    /// 7.6% faster with AVX-512, 6.5% with AVX2; at N = 1024 and 2048, whose K and V fit, the same
    /// within 3%; 256 against 64 at N = 2048 11% faster.)
    package func forwardRows(for problem: AttentionProblem) -> Int {
        if let forwardRows { return forwardRows }
        let headBytes = problem.longestKeys * (problem.headDim + problem.valueHeadDim) * 4
        var rows = headBytes <= caches.l2 ? 256 : 1024
        let (dp, dvp) = (roundUpToLanes(problem.headDim), roundUpToLanes(problem.valueHeadDim))
        let tiles = { (rows: Int) in (0..<problem.batch).reduce(0) { $0 + problem.heads * Tile.blockCount(problem.seqlenQ($1), rows) } }
        while rows > 64 && (4 * rows * (dp + dvp) > caches.l2 / 2 || tiles(rows) < 4 * cores) {
            rows /= 2
        }
        return rows
    }

    /// Why the tiles cannot be used, or nil.
    public var problem: String? {
        for (name, size) in [("key block", keyColumns), ("backward row block", backwardRows), ("backward key block", backwardKeys ?? 16),
                             ("forward row block", forwardRows ?? 16)]
            where size < 16 || size % 16 != 0 || size > 1024 {
            return "\(name) must be a multiple of 16 from 16 to 1024, got \(size)"
        }
        return nil
    }
}

/// The instruction set and tiles the kernels run with.
public struct KernelConfiguration: Sendable, Equatable {
    public var instructionSet: InstructionSet
    public var tiling: Tiling
    /// Where `tiling` came from, for reports.
    public var tileSource: TileSource

    public init(instructionSet: InstructionSet, tiling: Tiling, tileSource: TileSource = .fitted) {
        self.instructionSet = instructionSet
        self.tiling = tiling
        self.tileSource = tileSource
    }

    /// This machine's: `FLASHDIST_ISA` or the widest instruction set it has, tiles fitted to its caches.
    public static func host(environment: [String: String]) throws(AttentionError) -> KernelConfiguration {
        KernelConfiguration(instructionSet: try InstructionSet.chosen(environment: environment),
                            tiling: .fitted(to: CPUInfo.host.caches))
    }

    private static let shared = Mutex<KernelConfiguration?>(nil)

    /// What every call uses unless given another: `host` until set. A program sets it once at the
    /// start, before any call (the command line does so from its options and, under mpirun, from
    /// what all ranks agree on); reading it first with an unusable FLASHDIST_ISA stops the process
    /// with that error.
    public static var current: KernelConfiguration {
        get {
            shared.withLock { stored in
                if let stored { return stored }
                do {
                    let host = try host(environment: ProcessInfo.processInfo.environment)
                    stored = host
                    return host
                } catch {
                    fatalError("flashdist: \(error)")
                }
            }
        }
        set { shared.withLock { $0 = newValue } }
    }
}

/// One unit of scheduled work: a block of rows (or keys) of one head of one batch entry.
package struct Tile {
    package let batch: Int
    package let head: Int
    package let block: Int
    /// Relative cost (blocks visited): under a causal mask tiles differ by up to 2×.
    package let cost: Int

    package init(batch: Int, head: Int, block: Int, cost: Int) {
        (self.batch, self.head, self.block, self.cost) = (batch, head, block, cost)
    }

    /// One tile per block of `rows` rows of each query head; its cost is the key blocks its rows
    /// see. Head by head, so that tiles run back to back share K and V, and within a head the
    /// costliest first (under a causal mask the last rows), so that the tiles left at the end,
    /// which even out the workers, are the cheap ones of the last head: run in this order
    /// (`TileScheduler.run(…, inOrder: true)`) they balance about as well as all of them sorted
    /// by cost, which would put the same row block of every head side by side and bring K and V
    /// in afresh for every tile.
    package static func rowTiles(_ problem: AttentionProblem, rows: Int, keyColumns: Int) -> [Tile] {
        var tiles: [Tile] = []
        for b in 0..<problem.batch {
            let mask = problem.mask(b)
            let blocks = (0..<blockCount(mask.seqlenQ, rows)).map { block in
                (block, 1 + blockCount(mask.keys(seenBy: rowBlock(block, of: mask, rows: rows)).count, keyColumns))
            }.sorted { $0.1 > $1.1 }
            for h in 0..<problem.heads {
                tiles += blocks.map { Tile(batch: b, head: h, block: $0.0, cost: $0.1) }
            }
        }
        return tiles
    }

    /// One tile per key block of each kv head; its cost is the row blocks of its group that see it.
    package static func keyTiles(_ problem: AttentionProblem, rows: Int, keys: Int) -> [Tile] {
        var tiles: [Tile] = []
        for b in 0..<problem.batch {
            let mask = problem.mask(b)
            for block in 0..<blockCount(mask.seqlenK, keys) {
                let seers = mask.rows(seeing: keyBlock(block, of: mask, keys: keys))
                let cost = 1 + problem.groupSize * blockCount(seers.count, rows)
                for kvHead in 0..<problem.kvHeads { tiles.append(Tile(batch: b, head: kvHead, block: block, cost: cost)) }
            }
        }
        return tiles
    }

    /// One tile per kv head of each batch entry, for the fused backward; its cost is the row
    /// blocks that its key blocks see, over the group.
    package static func groupTiles(_ problem: AttentionProblem, rows: Int, keys: Int) -> [Tile] {
        var tiles: [Tile] = []
        for b in 0..<problem.batch {
            let mask = problem.mask(b)
            let cost = (0..<blockCount(mask.seqlenK, keys)).reduce(1) {
                $0 + problem.groupSize * blockCount(mask.rows(seeing: keyBlock($1, of: mask, keys: keys)).count, rows)
            }
            for kvHead in 0..<problem.kvHeads { tiles.append(Tile(batch: b, head: kvHead, block: 0, cost: cost)) }
        }
        return tiles
    }

    package static func rowBlock(_ block: Int, of mask: AttentionMask, rows: Int) -> Range<Int> {
        block * rows..<min((block + 1) * rows, mask.seqlenQ)
    }

    package static func keyBlock(_ block: Int, of mask: AttentionMask, keys: Int) -> Range<Int> {
        block * keys..<min((block + 1) * keys, mask.seqlenK)
    }

    package static func blockCount(_ n: Int, _ size: Int) -> Int { (n + size - 1) / size }
}
