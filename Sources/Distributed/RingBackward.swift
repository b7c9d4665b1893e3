import FlashAttention
import TensorSlices

/// The ring partition's backward on one rank: key block after key block in key order, the
/// block's keys and values from their owner and its per-head dK/dV sums from the window of the
/// rows before (`RingLayout.contributors`), this rank's rows added (`WindowBackward`), the sums
/// handed to the window of the rows after, or, from the last, the block's dK and dV to its owner.
///
/// Each window of a rank works through its key blocks in key order (its dq's order). With several
/// windows (zigzag), the rank takes whichever window's next item has what it needs, the earlier
/// pipeline step (block index plus the window's stage, one more than that of the window it
/// waits for) first, so a rank never idles while its other window could work, and waits only on
/// earlier steps: the pipeline cannot deadlock. Receives are posted one item ahead per window; a
/// rank keeps a block's keys and values from its first item on the block to its last, and lets
/// at most `sendsInFlight` sends run at once, so it holds O(P) blocks at a time. All of them move
/// on while the rank computes (`Message.progressing`).
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
    private static let sendsInFlight = 32

    /// Tags: each key block's keys and values, its final dK and dV, and its sums for each window
    /// of the receiving rank.
    private enum Kind { case keys, values, dK, dV, sums(window: Int) }
    private func tag(_ block: Int, _ kind: Kind) -> Int {
        let kinds = 4 + layout.windowCount
        switch kind {
        case .keys: return kinds * block
        case .values: return kinds * block + 1
        case .dK: return kinds * block + 2
        case .dV: return kinds * block + 3
        case .sums(let window): return kinds * block + 4 + window
        }
    }

    /// dK and dV of the keys this rank holds, `(batch, keys, kvHeads, headDim)` and `(…, valueHeadDim)`.
    func run() throws(MPIError) -> (dK: [Float], dV: [Float]) {
        let held = layout.keys(rank), owned = layout.ownedBlocks(rank), links = layout.links
        let chains = layout.blocks.indices.map { layout.contributors(ofBlock: $0, links: links) }
        // Keys and values by block, each block's entries one after the other: the local arrays
        // themselves for a single entry.
        let (kBlocks, vBlocks) = (blockMajor(k, held: held, value: false), blockMajor(v, held: held, value: true))
        var dK = [Float](repeating: 0, count: k.count * gradientFactor), dV = [Float](repeating: 0, count: v.count * gradientFactor)
        try kBlocks.withUnsafeBufferPointer { (kBlocks) throws(MPIError) in
            try vBlocks.withUnsafeBufferPointer { (vBlocks) throws(MPIError) in
                try dK.withUnsafeMutableBufferPointer { (dKOut) throws(MPIError) in
                    try dV.withUnsafeMutableBufferPointer { (dVOut) throws(MPIError) in
                        var messages: [Message] = []
                        for block in owned {
                            let keys = layout.blocks[block]
                            let (kAt, vAt) = (self.offset(block, in: held, value: false), self.offset(block, in: held, value: true))
                            let (kCount, vCount) = (layout.keyFloats(keys), layout.valueFloats(keys))
                            for target in Set(chains[block].map(\.rank)).sorted() where target != rank {
                                messages.append(try .send(kBlocks.baseAddress! + kAt, count: kCount, to: target, tag: tag(block, .keys), on: communicator))
                                messages.append(try .send(vBlocks.baseAddress! + vAt, count: vCount, to: target, tag: tag(block, .values), on: communicator))
                            }
                            if let last = chains[block].last, last.rank != rank {
                                let g = gradientFactor
                                messages.append(try .receive(into: dKOut.baseAddress! + kAt * g, count: kCount * g, from: last.rank,
                                                             tag: tag(block, .dK), on: communicator))
                                messages.append(try .receive(into: dVOut.baseAddress! + vAt * g, count: vCount * g, from: last.rank,
                                                             tag: tag(block, .dV), on: communicator))
                            }
                        }
                        try pipeline(chains: chains, kBlocks: kBlocks, vBlocks: vBlocks, dK: dKOut, dV: dVOut, held: held,
                                     owners: messages)
                        for message in messages { try message.wait() }
                    }
                }
            }
        }
        return (localLayout(dK, held: held, value: false), localLayout(dV, held: held, value: true))
    }

    /// One key block seen by one of this rank's windows.
    private struct Item {
        let block, window, position: Int
        let chain: [RingLayout.Link]
        var link: RingLayout.Link { chain[position] }
    }

    /// A block's keys and values received from its owner, kept from this rank's first item on
    /// the block to its last.
    private struct Kept {
        let k, v: FloatBuffer
        let messages: [Message]
    }

    private func pipeline(chains: [[RingLayout.Link]], kBlocks: UnsafeBufferPointer<Float>, vBlocks: UnsafeBufferPointer<Float>,
                          dK: UnsafeMutableBufferPointer<Float>, dV: UnsafeMutableBufferPointer<Float>, held: Range<Int>,
                          owners: [Message]) throws(MPIError) {
        // Each window's items in key order: the order its dq needs.
        let queues = windows.indices.map { w in
            chains.indices.compactMap { block in
                chains[block].firstIndex { $0.rank == rank && $0.window == w }.map { Item(block: block, window: w, position: $0, chain: chains[block]) }
            }
        }
        var cursors = queues.map { _ in 0 }
        var remaining: [Int: Int] = [:]
        for item in queues.joined() { remaining[item.block, default: 0] += 1 }
        var kept: [Int: Kept] = [:]
        var handedToSelf: [Int: FloatBuffer] = [:]
        var inboxes: [Int: [Int: (sums: FloatBuffer, message: Message?)]] = [:]
        var sends: [(message: Message, buffers: [FloatBuffer])] = []

        /// Posts the receives of the `index`th item of window `w`.
        func post(_ w: Int, _ index: Int) throws(MPIError) {
            guard index < queues[w].count, inboxes[w]?[index] == nil else { return }
            let item = queues[w][index], keys = layout.blocks[item.block], owner = layout.owner(ofBlock: item.block)
            if owner != rank && kept[item.block] == nil {
                let (k, v) = (FloatBuffer(layout.keyFloats(keys)), FloatBuffer(layout.valueFloats(keys)))
                kept[item.block] = Kept(k: k, v: v, messages: [
                    try .receive(into: k.base, count: k.count, from: owner, tag: tag(item.block, .keys), on: communicator),
                    try .receive(into: v.base, count: v.count, from: owner, tag: tag(item.block, .values), on: communicator)])
            }
            var message: Message?
            let sums = FloatBuffer(WindowAttention.partialFloats(problem, keys: keys))
            if item.position == 0 {
                sums.base.update(repeating: 0, count: sums.count)
            } else if item.chain[item.position - 1].rank != rank {
                message = try .receive(into: sums.base, count: sums.count, from: item.chain[item.position - 1].rank,
                                       tag: tag(item.block, .sums(window: item.window)), on: communicator)
            }
            inboxes[w, default: [:]][index] = (sums, message)
        }
        /// Whether the `index`th item of window `w` has all it needs; with `wait`, once it has.
        func ready(_ w: Int, _ index: Int, wait: Bool) throws(MPIError) -> Bool {
            let item = queues[w][index], inbox = inboxes[w]![index]!
            if item.position > 0 && item.chain[item.position - 1].rank == rank && handedToSelf[item.block] == nil { return false }
            for message in (kept[item.block]?.messages ?? []) + (inbox.message.map { [$0] } ?? []) {
                if wait { try message.wait() } else if try !message.isComplete() { return false }
            }
            return true
        }
        /// Starts a send whose buffers must live until it completes.
        func send(_ buffer: FloatBuffer, count: Int, to target: Int, tag: Int) throws(MPIError) {
            if sends.count >= Self.sendsInFlight {
                // The buffers must outlive the wait, which Swift cannot see.
                let oldest = sends.removeFirst()
                try withExtendedLifetime(oldest.buffers) { () throws(MPIError) in try oldest.message.wait() }
            }
            sends.append((try .send(buffer.base, count: count, to: target, tag: tag, on: communicator), [buffer]))
        }

        for w in queues.indices { try post(w, 0); try post(w, 1) }
        while true {
            // The heads of the windows' queues, earliest pipeline step first; the first that has
            // all it needs goes, or, if none has, the earliest once it has (it waits only on
            // earlier steps of other ranks, or on this rank's other window).
            let heads = queues.indices.filter { cursors[$0] < queues[$0].count }
                .sorted { queues[$0][cursors[$0]].block + queues[$0][cursors[$0]].link.stage < queues[$1][cursors[$1]].block + queues[$1][cursors[$1]].link.stage }
            guard !heads.isEmpty else { break }
            var chosen: Int?
            while chosen == nil {
                for w in heads where try ready(w, cursors[w], wait: heads.count == 1) { chosen = w; break }
            }
            let w = chosen!, index = cursors[w], item = queues[w][index]
            cursors[w] += 1
            try post(w, index + 2)
            let inbox = inboxes[w]!.removeValue(forKey: index)!
            let keys = layout.blocks[item.block], owner = layout.owner(ofBlock: item.block)
            let sums = item.position > 0 && item.chain[item.position - 1].rank == rank ? handedToSelf.removeValue(forKey: item.block)! : inbox.sums
            let (kAt, vAt) = owner == rank ? (offset(item.block, in: held, value: false), offset(item.block, in: held, value: true)) : (0, 0)
            let (k, v) = owner == rank ? (kBlocks.baseAddress! + kAt, vBlocks.baseAddress! + vAt)
                                       : (UnsafePointer(kept[item.block]!.k.base), UnsafePointer(kept[item.block]!.v.base))
            // Every transfer this rank has in flight moves on while it computes.
            let inFlight = owners + kept.values.flatMap(\.messages) + inboxes.values.flatMap { $0.values.compactMap(\.message) }
                + sends.map(\.message)
            try Message.progressing(inFlight) { windows[w].accumulate(keys: keys, k: k, v: v, partials: sums.base) }
            remaining[item.block]! -= 1
            if remaining[item.block] == 0 { kept[item.block] = nil }
            if item.position + 1 < item.chain.count {
                let next = item.chain[item.position + 1]
                if next.rank == rank {
                    handedToSelf[item.block] = sums
                } else {
                    try send(sums, count: sums.count, to: next.rank, tag: tag(item.block, .sums(window: next.window)))
                }
                continue
            }
            let gradients = WindowAttention.keyGradients(problem, keys: keys, partials: sums.base, layout: gradientLayout)
            if owner == rank {
                (dK.baseAddress! + kAt * gradientFactor).update(from: gradients.dK, count: gradients.dK.count)
                (dV.baseAddress! + vAt * gradientFactor).update(from: gradients.dV, count: gradients.dV.count)
            } else {
                let (dKBuffer, dVBuffer) = (FloatBuffer(gradients.dK), FloatBuffer(gradients.dV))
                try send(dKBuffer, count: dKBuffer.count, to: owner, tag: tag(item.block, .dK))
                try send(dVBuffer, count: dVBuffer.count, to: owner, tag: tag(item.block, .dV))
            }
        }
        for send in sends { try withExtendedLifetime(send.buffers) { () throws(MPIError) in try send.message.wait() } }
    }

    /// Where key block `block` starts in the block-major arrays of the keys `held` (of v with `value`).
    private func offset(_ block: Int, in held: Range<Int>, value: Bool) -> Int {
        let before = held.lowerBound..<layout.blocks[block].lowerBound
        return value ? layout.valueFloats(before) : layout.keyFloats(before)
    }

    private func width(value: Bool) -> Int { value ? problem.valueHeadDim : problem.headDim }

    /// `(batch, held, kvHeads, width)` rearranged block by block, each block `(batch, keys,
    /// kvHeads, width)`, width the head dim of k or (with `value`) of v; a single entry's array is
    /// already so.
    private func blockMajor(_ local: [Float], held: Range<Int>, value: Bool) -> [Float] {
        let shape = [problem.totalKeys / max(1, problem.sequenceLength(keys: true)), held.count, problem.kvHeads, width(value: value)]
        guard shape[0] > 1 else { return local }
        return layout.ownedBlocks(rank).flatMap { block in
            let keys = layout.blocks[block]
            return AxisSlice(shape: shape, axis: 1, range: keys.lowerBound - held.lowerBound..<keys.upperBound - held.lowerBound).gather(local)
        }
    }

    /// The inverse of `blockMajor`, for dK and (with `value`) dV.
    private func localLayout(_ blocks: [Float], held: Range<Int>, value: Bool) -> [Float] {
        let shape = [problem.totalKeys / max(1, problem.sequenceLength(keys: true)), held.count,
                     problem.kvHeads * gradientFactor, width(value: value)]
        guard shape[0] > 1 else { return blocks }
        var local = [Float](repeating: 0, count: blocks.count)
        for block in layout.ownedBlocks(rank) {
            let keys = layout.blocks[block], offset = self.offset(block, in: held, value: value) * gradientFactor
            let slice = AxisSlice(shape: shape, axis: 1, range: keys.lowerBound - held.lowerBound..<keys.upperBound - held.lowerBound)
            slice.scatter(Array(blocks[offset..<offset + slice.elementCount]), into: &local)
        }
        return local
    }
}
