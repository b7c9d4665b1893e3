import Distributed
import Testing

// Which rank owns which heads, and from that which kv heads each reads and writes: the rules
// `--partition heads` and the split-group dK/dV reduction rest on, checked without MPI.

/// Head counts and rank counts around the edges: fewer kv heads than ranks, more ranks than heads,
/// group sizes 1 (MHA), 3 and 8 (MQA-like).
private let shapes: [(heads: Int, kvHeads: Int)] = [(6, 2), (6, 6), (8, 1), (12, 4), (5, 5), (9, 3)]

@Test("every query head has exactly one owner, in rank order", arguments: shapes, 1...7)
func headsPartitioned(shape: (heads: Int, kvHeads: Int), ranks: Int) {
    let assignment = HeadAssignment(heads: shape.heads, kvHeads: shape.kvHeads, ranks: ranks)
    let owned = (0..<ranks).map(assignment.heads(of:))
    #expect(owned.first?.lowerBound == 0 && owned.last?.upperBound == shape.heads)
    #expect(zip(owned, owned.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
    let sizes = owned.map(\.count)
    if shape.kvHeads >= ranks {
        // Whole GQA groups: no group's dK/dV is split, and groups are shared out evenly.
        #expect(owned.allSatisfy { $0.lowerBound % assignment.groupSize == 0 && $0.upperBound % assignment.groupSize == 0 })
        #expect(sizes.max()! - sizes.min()! <= assignment.groupSize)
    } else {
        #expect(sizes.max()! - sizes.min()! <= 1)
    }
}

@Test("each rank reads the kv heads of its query heads, and each kv head is written once",
      arguments: shapes, 1...7)
func kvHeadsReadAndWritten(shape: (heads: Int, kvHeads: Int), ranks: Int) {
    let assignment = HeadAssignment(heads: shape.heads, kvHeads: shape.kvHeads, ranks: ranks)
    for rank in 0..<ranks {
        let needed = Set(assignment.heads(of: rank).map { $0 / assignment.groupSize })
        #expect(Set(assignment.kvHeadsRead(by: rank)) == needed, "rank \(rank)")
    }
    let written = (0..<ranks).flatMap { Array(assignment.kvHeadsWritten(by: $0)) }
    #expect(written == Array(0..<shape.kvHeads))
    for rank in 0..<ranks {
        for kvHead in assignment.kvHeadsWritten(by: rank) {
            #expect(assignment.heads(of: rank).contains(kvHead * assignment.groupSize), "the writer owns the group's first head")
        }
    }
}

@Test("a split group's pieces, taken in rank order, are its heads in order (the reduction order)",
      arguments: shapes, 1...7)
func splitGroupPiecesInHeadOrder(shape: (heads: Int, kvHeads: Int), ranks: Int) {
    let assignment = HeadAssignment(heads: shape.heads, kvHeads: shape.kvHeads, ranks: ranks)
    for kvHead in 0..<shape.kvHeads {
        let group = assignment.group(kvHead)
        let pieces = (0..<ranks).map { assignment.heads(of: $0).clamped(to: group) }.filter { !$0.isEmpty }
        // ((0 + c₀) + c₁) + … in rank order is the kernel's own head order only if this holds.
        #expect(pieces.flatMap { Array($0) } == Array(group), "kv head \(kvHead)")
        #expect(assignment.kvHeadsWritten(by: assignment.rank(owning: group.lowerBound)).contains(kvHead))
    }
}

@Test("six heads in two groups over four ranks")
func splitGroupsByHand() {
    let assignment = HeadAssignment(heads: 6, kvHeads: 2, ranks: 4)
    #expect((0..<4).map(assignment.heads(of:)) == [0..<1, 1..<3, 3..<4, 4..<6])
    #expect((0..<4).map(assignment.kvHeadsRead(by:)) == [0..<1, 0..<1, 1..<2, 1..<2])
    #expect((0..<4).map(assignment.kvHeadsWritten(by:)) == [0..<1, 1..<1, 1..<2, 2..<2])
}

@Test("an even split's parts differ by at most one and cover the items", arguments: [0, 1, 5, 7, 100], 1...6)
func evenSplit(count: Int, parts: Int) {
    let split = EvenSplit(count: count, parts: parts)
    let ranges = (0..<parts).map(split.range)
    #expect(ranges.flatMap { Array($0) } == Array(0..<count))
    #expect(ranges.map(\.count).max()! - ranges.map(\.count).min()! <= 1)
}
