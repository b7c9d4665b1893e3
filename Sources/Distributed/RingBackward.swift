import FlashAttention
import TensorIO

/// The ring partition's backward on one rank: key block after key block in key order, the
/// block's keys and values from their owner and its per-head dK/dV sums from the window of the
/// rows before (`RingLayout.contributors`), this rank's rows added (`WindowBackward`), the sums
/// handed to the window of the rows after, or, from the last, the block's dK and dV to its owner.
///
/// A rank works through its (key block, window) items in pipeline order: block index plus the
/// window's stage, which is one more than that of the window it waits for, so every item waits
/// only on items of earlier steps and the pipeline cannot deadlock. Receives are posted one item
/// ahead; a rank keeps a block's keys and values from its first item on the block to its last,
/// and lets at most `sendsInFlight` sends of sums run at once, so it holds O(P) blocks at a time.
struct RingBackward {
    let layout: RingLayout
    let communicator: Communicator
    let windows: [WindowBackward]
    let k, v: [Float]
    let gradientLayout: KeyGradientLayout

    /// dK and dV floats per k or v float: 1, or the group size for per-head gradients.
    private var gradientFactor: Int { gradientLayout == .perQueryHead ? problem.groupSize : 1 }

    private var rank: Int { communicator.rank }
    private var problem: AttentionProblem { layout.problem }
    private static let sendsInFlight = 8

    /// Tags: each key block's keys and values, its sums for a rank's first or second window, and
    /// its final dK and dV.
    private enum Kind: Int { case keys, values, sumsForFirst, sumsForSecond, dK, dV }
    private func tag(_ block: Int, _ kind: Kind) -> Int { 6 * block + kind.rawValue }

    /// dK and dV of the keys this rank holds, `(batch, keys, kvHeads, headDim)`.
    func run() throws(MPIError) -> (dK: [Float], dV: [Float]) {
        let held = layout.keys(rank), owned = layout.ownedBlocks(rank), links = layout.links
        let chains = layout.blocks.indices.map { layout.contributors(ofBlock: $0, links: links) }
        // Keys and values by block, each block's entries one after the other: the local arrays
        // themselves for a single entry.
        let (kBlocks, vBlocks) = (blockMajor(k, held: held), blockMajor(v, held: held))
        var dK = [Float](repeating: 0, count: k.count * gradientFactor), dV = dK
        try kBlocks.withUnsafeBufferPointer { (kBlocks) throws(MPIError) in
            try vBlocks.withUnsafeBufferPointer { (vBlocks) throws(MPIError) in
                try dK.withUnsafeMutableBufferPointer { (dKOut) throws(MPIError) in
                    try dV.withUnsafeMutableBufferPointer { (dVOut) throws(MPIError) in
                        var messages: [Message] = []
                        for block in owned {
                            let (offset, count) = (self.offset(block, in: held), layout.keyFloats(layout.blocks[block]))
                            for target in Set(chains[block].map(\.rank)).sorted() where target != rank {
                                messages.append(try .send(kBlocks.baseAddress! + offset, count: count, to: target, tag: tag(block, .keys), on: communicator))
                                messages.append(try .send(vBlocks.baseAddress! + offset, count: count, to: target, tag: tag(block, .values), on: communicator))
                            }
                            if let last = chains[block].last, last.rank != rank {
                                let (at, floats) = (offset * gradientFactor, count * gradientFactor)
                                messages.append(try .receive(into: dKOut.baseAddress! + at, count: floats, from: last.rank, tag: tag(block, .dK), on: communicator))
                                messages.append(try .receive(into: dVOut.baseAddress! + at, count: floats, from: last.rank, tag: tag(block, .dV), on: communicator))
                            }
                        }
                        try pipeline(chains: chains, kBlocks: kBlocks, vBlocks: vBlocks, dK: dKOut, dV: dVOut, held: held)
                        for message in messages { try message.wait() }
                    }
                }
            }
        }
        return (localLayout(dK, held: held), localLayout(dV, held: held))
    }

    /// One key block seen by one of this rank's windows.
    private struct Item {
        let block, window, position: Int
        let chain: [RingLayout.Link]
        var link: RingLayout.Link { chain[position] }
    }

    /// What an item receives: the block's keys and values (unless held or kept), and the sums.
    private struct Inbox {
        var keys: (k: FloatBuffer, v: FloatBuffer)?
        var sums: FloatBuffer
        var messages: [Message]
    }

    private func pipeline(chains: [[RingLayout.Link]], kBlocks: UnsafeBufferPointer<Float>, vBlocks: UnsafeBufferPointer<Float>,
                          dK: UnsafeMutableBufferPointer<Float>, dV: UnsafeMutableBufferPointer<Float>, held: Range<Int>) throws(MPIError) {
        let items = chains.indices.flatMap { block in
            chains[block].indices.compactMap { position in
                chains[block][position].rank == rank ? Item(block: block, window: chains[block][position].window, position: position, chain: chains[block]) : nil
            }
        }.sorted { ($0.block + $0.link.stage, $0.link.stage) < ($1.block + $1.link.stage, $1.link.stage) }
        var lastItem: [Int: Int] = [:]
        for (index, item) in items.enumerated() { lastItem[item.block] = index }
        var kept: [Int: (k: FloatBuffer, v: FloatBuffer)] = [:]
        var handedToSelf: [Int: FloatBuffer] = [:]
        var inboxes: [Int: Inbox] = [:]
        var sends: [(message: Message, buffers: [FloatBuffer])] = []

        /// Posts the receives of item `index`.
        func post(_ index: Int) throws(MPIError) {
            guard index < items.count else { return }
            let item = items[index], keys = layout.blocks[item.block], owner = layout.owner(ofBlock: item.block)
            var inbox = Inbox(keys: nil, sums: FloatBuffer(WindowAttention.partialFloats(problem, keys: keys)), messages: [])
            if owner != rank && kept[item.block] == nil {
                let count = layout.keyFloats(keys), buffers = (k: FloatBuffer(count), v: FloatBuffer(count))
                inbox.messages.append(try .receive(into: buffers.k.base, count: count, from: owner, tag: tag(item.block, .keys), on: communicator))
                inbox.messages.append(try .receive(into: buffers.v.base, count: count, from: owner, tag: tag(item.block, .values), on: communicator))
                inbox.keys = buffers
                kept[item.block] = buffers
            }
            if item.position == 0 {
                inbox.sums.base.update(repeating: 0, count: inbox.sums.count)
            } else if item.chain[item.position - 1].rank != rank {
                inbox.messages.append(try .receive(into: inbox.sums.base, count: inbox.sums.count, from: item.chain[item.position - 1].rank,
                                                   tag: tag(item.block, item.window == 0 ? .sumsForFirst : .sumsForSecond), on: communicator))
            }
            inboxes[index] = inbox
        }
        /// Starts a send whose buffers must live until it completes, keeping at most `sendsInFlight`.
        func send(_ buffer: FloatBuffer, count: Int, to target: Int, tag: Int) throws(MPIError) {
            if sends.count >= Self.sendsInFlight { try sends.removeFirst().message.wait() }
            sends.append((try .send(buffer.base, count: count, to: target, tag: tag, on: communicator), [buffer]))
        }

        try post(0)
        for (index, item) in items.enumerated() {
            try post(index + 1)
            let inbox = inboxes.removeValue(forKey: index)!
            for message in inbox.messages { try message.wait() }
            let keys = layout.blocks[item.block], owner = layout.owner(ofBlock: item.block)
            let sums = item.position > 0 && item.chain[item.position - 1].rank == rank ? handedToSelf.removeValue(forKey: item.block)! : inbox.sums
            let offset = owner == rank ? self.offset(item.block, in: held) : 0
            if owner == rank {
                windows[item.window].accumulate(keys: keys, k: kBlocks.baseAddress! + offset, v: vBlocks.baseAddress! + offset, partials: sums.base)
            } else {
                let buffers = kept[item.block]!
                windows[item.window].accumulate(keys: keys, k: buffers.k.base, v: buffers.v.base, partials: sums.base)
            }
            if lastItem[item.block] == index { kept[item.block] = nil }
            if item.position + 1 < item.chain.count {
                let next = item.chain[item.position + 1]
                if next.rank == rank {
                    handedToSelf[item.block] = sums
                } else {
                    try send(sums, count: sums.count, to: next.rank, tag: tag(item.block, next.window == 0 ? .sumsForFirst : .sumsForSecond))
                }
                continue
            }
            let gradients = WindowAttention.keyGradients(problem, keys: keys, partials: sums.base, layout: gradientLayout)
            if owner == rank {
                (dK.baseAddress! + offset * gradientFactor).update(from: gradients.dK, count: gradients.dK.count)
                (dV.baseAddress! + offset * gradientFactor).update(from: gradients.dV, count: gradients.dV.count)
            } else {
                let (dKBuffer, dVBuffer) = (FloatBuffer(gradients.dK), FloatBuffer(gradients.dV))
                try send(dKBuffer, count: dKBuffer.count, to: owner, tag: tag(item.block, .dK))
                try send(dVBuffer, count: dVBuffer.count, to: owner, tag: tag(item.block, .dV))
            }
        }
        for send in sends { try withExtendedLifetime(send.buffers) { () throws(MPIError) in try send.message.wait() } }
    }

    /// Where key block `block` starts in the block-major arrays of the keys `held`.
    private func offset(_ block: Int, in held: Range<Int>) -> Int {
        layout.keyFloats(held.lowerBound..<layout.blocks[block].lowerBound)
    }

    /// `(batch, held, kvHeads, headDim)` rearranged block by block, each block `(batch, keys,
    /// kvHeads, headDim)`; a single entry's array is already so.
    private func blockMajor(_ local: [Float], held: Range<Int>) -> [Float] {
        let shape = [problem.totalKeys / max(1, problem.sequenceLength(keys: true)), held.count, problem.kvHeads, problem.headDim]
        guard shape[0] > 1 else { return local }
        return layout.ownedBlocks(rank).flatMap { block in
            let keys = layout.blocks[block]
            return AxisSlice(shape: shape, axis: 1, range: keys.lowerBound - held.lowerBound..<keys.upperBound - held.lowerBound).gather(local)
        }
    }

    /// The inverse of `blockMajor`, for dK and dV.
    private func localLayout(_ blocks: [Float], held: Range<Int>) -> [Float] {
        let shape = [problem.totalKeys / max(1, problem.sequenceLength(keys: true)), held.count,
                     problem.kvHeads * gradientFactor, problem.headDim]
        guard shape[0] > 1 else { return blocks }
        var local = [Float](repeating: 0, count: blocks.count)
        for block in layout.ownedBlocks(rank) {
            let keys = layout.blocks[block], offset = self.offset(block, in: held) * gradientFactor
            let slice = AxisSlice(shape: shape, axis: 1, range: keys.lowerBound - held.lowerBound..<keys.upperBound - held.lowerBound)
            slice.scatter(Array(blocks[offset..<offset + slice.elementCount]), into: &local)
        }
        return local
    }
}
