/// `count` items split into `parts` contiguous ranges whose sizes differ by at most one (some
/// empty when there are fewer items than parts).
public struct EvenSplit: Sendable {
    public let count: Int
    public let parts: Int

    public init(count: Int, parts: Int) { (self.count, self.parts) = (count, parts) }

    public func range(_ part: Int) -> Range<Int> { part * count / parts..<(part + 1) * count / parts }
}

/// Which query heads each rank owns, and from that which kv heads it reads and which it writes.
///
/// With at least as many kv heads as ranks, ranks get whole GQA groups, so no group's dK/dV is
/// split. With fewer, the query heads themselves are shared out: a group may then span ranks,
/// each reading its kv head, and the rank owning the group's first query head writes its dK/dV
/// (`SplitGroupReduction`). With more ranks than heads some ranks own none.
public struct HeadAssignment: Sendable {
    public let heads: Int
    public let kvHeads: Int
    public let ranks: Int

    public init(heads: Int, kvHeads: Int, ranks: Int) { (self.heads, self.kvHeads, self.ranks) = (heads, kvHeads, ranks) }

    public var groupSize: Int { heads / kvHeads }

    public func heads(of rank: Int) -> Range<Int> {
        guard kvHeads >= ranks else { return EvenSplit(count: heads, parts: ranks).range(rank) }
        let groups = EvenSplit(count: kvHeads, parts: ranks).range(rank)
        return groups.lowerBound * groupSize..<groups.upperBound * groupSize
    }

    /// The kv heads that the query heads of `rank` attend with.
    public func kvHeadsRead(by rank: Int) -> Range<Int> {
        let own = heads(of: rank)
        return own.isEmpty ? own.lowerBound / groupSize..<own.lowerBound / groupSize
                           : own.lowerBound / groupSize..<(own.upperBound - 1) / groupSize + 1
    }

    /// The kv heads whose dK and dV `rank` writes: those whose group's first query head it owns.
    public func kvHeadsWritten(by rank: Int) -> Range<Int> {
        let own = heads(of: rank)
        return (own.lowerBound + groupSize - 1) / groupSize..<(own.upperBound + groupSize - 1) / groupSize
    }

    /// The query heads of kv head `kvHead`'s group.
    package func group(_ kvHead: Int) -> Range<Int> { kvHead * groupSize..<(kvHead + 1) * groupSize }

    /// The rank that owns query head `head`.
    package func rank(owning head: Int) -> Int { (0..<ranks).first { heads(of: $0).contains(head) }! }
}
