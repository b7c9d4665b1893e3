import Distributed
import FlashAttention
import Testing

// The ring partition's layout: which rows (zigzagged where the work per row varies) and which key
// blocks each rank holds, and the row order in which a key block's dK/dV sums pass between ranks.

private let tiling = Tiling(keyColumns: 64, backwardRows: 64, backwardKeys: 64, forwardRows: 64,
                            caches: CacheSizes(l1: 48 << 10, l2: 1 << 20, l3: 32 << 20))

private func problem(_ n: Int, causal: Bool = false, windowLeft: Int = -1, windowRight: Int = -1) throws -> AttentionProblem {
    try AttentionProblem(batch: 1, seqlenQ: n, seqlenK: n, heads: 2, kvHeads: 1, headDim: 16,
                         options: AttentionOptions(softmaxScale: 0.25, causal: causal, windowLeft: windowLeft,
                                                   windowRight: windowRight))
}

@Test("causal rows are dealt forwards, backwards, forwards, backwards over the ranks")
func causalZigzag() throws {
    let layout = RingLayout(try problem(1200, causal: true), ranks: 3, tiling: tiling)
    #expect(layout.zigzag && layout.windowCount == RingLayout.passes)
    #expect((0..<3).map(layout.chunkIndices) == [[0, 5, 6, 11], [1, 4, 7, 10], [2, 3, 8, 9]])
    #expect(layout.windows(1) == [100..<200, 400..<500, 700..<800, 1000..<1100])
}

@Test("rows whose key counts do not vary are cut into one contiguous run per rank")
func noZigzagWithoutSlope() throws {
    for p in [try problem(1000), try problem(1000, windowLeft: 50, windowRight: 50)] {
        let layout = RingLayout(p, ranks: 4, tiling: tiling)
        #expect(!layout.zigzag)
        #expect((0..<4).map(layout.windows) == [[0..<250], [250..<500], [500..<750], [750..<1000]])
    }
    // A window open on one side has a slope, like causal.
    #expect(RingLayout(try problem(1000, windowLeft: -1, windowRight: 8), ranks: 2, tiling: tiling).zigzag)
    #expect(!RingLayout(try problem(1000, causal: true), ranks: 1, tiling: tiling).zigzag)
}

@Test("every rank gets the same causal work", arguments: 2...5)
func causalBalance(ranks: Int) throws {
    let n = 64 * 8 * ranks
    let layout = RingLayout(try problem(n, causal: true), ranks: ranks, tiling: tiling)
    // Row i of a causal square problem sees i + 1 keys.
    let work = (0..<ranks).map { layout.windows($0).reduce(0) { $0 + $1.reduce(0) { $0 + $1 + 1 } } }
    #expect(work.max()! - work.min()! <= n / ranks, "\(work)")
}

@Test("rows and key blocks are each held by exactly one rank", arguments: [1, 2, 3, 5, 40])
func everyRowAndKeyOnce(ranks: Int) throws {
    for p in [try problem(1000, causal: true), try problem(1000), try problem(10, causal: true)] {
        let layout = RingLayout(p, ranks: ranks, tiling: tiling)
        let rows = (0..<ranks).flatMap { layout.windows($0) }.filter { !$0.isEmpty }.sorted { $0.lowerBound < $1.lowerBound }
        #expect(rows.flatMap { Array($0) } == Array(0..<p.totalQueries))
        let keys = (0..<ranks).map(layout.keys)
        #expect(keys.flatMap { Array($0) } == Array(0..<p.totalKeys))
        for rank in 0..<ranks where !keys[rank].isEmpty {
            // Whole blocks only: a run starts where a block starts.
            #expect(layout.blocks.contains { $0.lowerBound == keys[rank].lowerBound })
            #expect(layout.ownedBlocks(rank).allSatisfy { layout.owner(ofBlock: $0) == rank })
        }
    }
}

@Test("a key block's dK/dV sums pass through its contributing windows in row order", arguments: [2, 3, 4])
func contributorsInRowOrder(ranks: Int) throws {
    let p = try problem(1000, causal: true)
    let layout = RingLayout(p, ranks: ranks, tiling: tiling)
    let links = layout.links
    #expect(links.map(\.stage) == Array(links.indices))
    let starts = links.map { layout.windows($0.rank)[$0.window].lowerBound }
    #expect(starts == starts.sorted())
    for block in layout.blocks.indices {
        let chain = layout.contributors(ofBlock: block, links: links)
        #expect(chain.map(\.stage) == chain.map(\.stage).sorted())
        // Causal: the rows at or below the block's first key, in whole backward row blocks.
        let first = layout.blocks[block].lowerBound / tiling.backwardRows * tiling.backwardRows
        let covered = chain.flatMap { Array(layout.windows($0.rank)[$0.window]) }
        #expect(covered.contains(first) && covered.contains(p.totalQueries - 1))
    }
}
