import FlashAttention
import TensorIO

/// The ring partition's backward on one rank: key block after key block in key order, the
/// block's keys and values from their owner and its per-head dK/dV sums from the rank of the
/// rows before (`RingLayout.contributors`), this rank's rows added (`WindowBackward`), the sums
/// handed to the rank of the rows after, or, from the last, the block's dK and dV to its owner.
///
/// Each key block a rank works on has a slot of buffers (keys, values, sums); receives are posted
/// one block ahead into the next slot, and a slot is reused only once the send of its sums is
/// complete. A rank waits only on ranks of earlier rows or on owners, whose sends are posted
/// before they wait on anything, so the pipeline cannot deadlock.
struct RingBackward {
    let layout: RingLayout
    let communicator: Communicator
    let window: WindowBackward
    let k, v: [Float]

    private var rank: Int { communicator.rank }
    private var problem: AttentionProblem { layout.problem }
    private static let slots = 3

    /// Tags: each key block's keys, values, dK and dV sums, and final dK and dV.
    private func tag(_ block: Int, _ kind: Int) -> Int { 5 * block + kind }

    /// dK and dV of the keys this rank holds, `(batch, keys, kvHeads, headDim)`.
    mutating func run() throws(MPIError) -> (dK: [Float], dV: [Float]) {
        let held = layout.keys(rank), owned = layout.ownedBlocks(rank)
        let contributors = layout.blocks.indices.map { layout.contributors(ofBlock: $0) }
        // Keys and values by block, each block's entries one after the other: the local arrays
        // themselves for a single entry.
        let (kBlocks, vBlocks) = (blockMajor(k, held: held), blockMajor(v, held: held))
        var dK = [Float](repeating: 0, count: k.count), dV = dK
        var finals: [Message] = []
        try kBlocks.withUnsafeBufferPointer { (kBlocks) throws(MPIError) in
            try vBlocks.withUnsafeBufferPointer { (vBlocks) throws(MPIError) in
                try dK.withUnsafeMutableBufferPointer { (dKOut) throws(MPIError) in
                    try dV.withUnsafeMutableBufferPointer { (dVOut) throws(MPIError) in
                        var sends: [Message] = []
                        for block in owned {
                            let (offset, count) = (self.offset(block, in: held), layout.keyFloats(layout.blocks[block]))
                            for target in contributors[block] where target != rank {
                                sends.append(try .send(kBlocks.baseAddress! + offset, count: count, to: target, tag: tag(block, 0), on: communicator))
                                sends.append(try .send(vBlocks.baseAddress! + offset, count: count, to: target, tag: tag(block, 1), on: communicator))
                            }
                            if let last = contributors[block].last, last != rank {
                                finals.append(try .receive(into: dKOut.baseAddress! + offset, count: count, from: last, tag: tag(block, 3), on: communicator))
                                finals.append(try .receive(into: dVOut.baseAddress! + offset, count: count, from: last, tag: tag(block, 4), on: communicator))
                            }
                        }
                        try pipeline(contributors: contributors, kBlocks: kBlocks, vBlocks: vBlocks, dK: dKOut, dV: dVOut, held: held)
                        for message in sends + finals { try message.wait() }
                    }
                }
            }
        }
        return (localLayout(dK, held: held), localLayout(dV, held: held))
    }

    /// The key blocks this rank adds rows to, in key order.
    private func pipeline(contributors: [[Int]], kBlocks: UnsafeBufferPointer<Float>, vBlocks: UnsafeBufferPointer<Float>,
                          dK: UnsafeMutableBufferPointer<Float>, dV: UnsafeMutableBufferPointer<Float>, held: Range<Int>) throws(MPIError) {
        let mine = layout.blocks.indices.filter { contributors[$0].contains(rank) }
        let largest = mine.map { layout.keyFloats(layout.blocks[$0]) }.max() ?? 0
        let largestSums = mine.map { WindowAttention.partialFloats(problem, keys: layout.blocks[$0]) }.max() ?? 0
        let slots = (0..<min(Self.slots, mine.count)).map { _ in
            (k: FloatBuffer(largest), v: FloatBuffer(largest), sums: FloatBuffer(largestSums))
        }
        var incoming: [Int: [Message]] = [:], outgoing: [Int: [Message]] = [:]
        /// Posts the receives of the `index`th block into its slot, once the slot's sends are done.
        func post(_ index: Int) throws(MPIError) {
            guard index < mine.count else { return }
            let block = mine[index], slot = slots[index % slots.count], keys = layout.blocks[block]
            for message in outgoing.removeValue(forKey: index % slots.count) ?? [] { try message.wait() }
            var messages: [Message] = []
            let owner = layout.owner(ofBlock: block)
            if owner != rank {
                let count = layout.keyFloats(keys)
                messages.append(try .receive(into: slot.k.base, count: count, from: owner, tag: tag(block, 0), on: communicator))
                messages.append(try .receive(into: slot.v.base, count: count, from: owner, tag: tag(block, 1), on: communicator))
            }
            let order = contributors[block], position = order.firstIndex(of: rank)!
            let sums = WindowAttention.partialFloats(problem, keys: keys)
            if position > 0 {
                messages.append(try .receive(into: slot.sums.base, count: sums, from: order[position - 1], tag: tag(block, 2),
                                             on: communicator))
            } else {
                slot.sums.base.update(repeating: 0, count: sums)
            }
            incoming[index] = messages
        }
        try post(0)
        for (index, block) in mine.enumerated() {
            try post(index + 1)
            for message in incoming.removeValue(forKey: index) ?? [] { try message.wait() }
            let slot = slots[index % slots.count], keys = layout.blocks[block]
            let owner = layout.owner(ofBlock: block)
            let offset = owner == rank ? self.offset(block, in: held) : 0
            let (kBlock, vBlock) = owner == rank ? (kBlocks.baseAddress! + offset, vBlocks.baseAddress! + offset)
                                                 : (UnsafePointer(slot.k.base), UnsafePointer(slot.v.base))
            window.accumulate(keys: keys, k: kBlock, v: vBlock, partials: slot.sums.base)
            let order = contributors[block], position = order.firstIndex(of: rank)!
            if position + 1 < order.count {
                outgoing[index % slots.count] = [try .send(slot.sums.base, count: WindowAttention.partialFloats(problem, keys: keys),
                                                           to: order[position + 1], tag: tag(block, 2), on: communicator)]
                continue
            }
            let gradients = WindowAttention.keyGradients(problem, keys: keys, partials: slot.sums.base)
            if owner == rank {
                (dK.baseAddress! + offset).update(from: gradients.dK, count: gradients.dK.count)
                (dV.baseAddress! + offset).update(from: gradients.dV, count: gradients.dV.count)
            } else {
                // The block's dK and dV wait in the slot's key buffers, free once computed on.
                slot.k.base.update(from: gradients.dK, count: gradients.dK.count)
                slot.v.base.update(from: gradients.dV, count: gradients.dV.count)
                outgoing[index % slots.count] = [
                    try .send(slot.k.base, count: gradients.dK.count, to: owner, tag: tag(block, 3), on: communicator),
                    try .send(slot.v.base, count: gradients.dV.count, to: owner, tag: tag(block, 4), on: communicator)]
            }
        }
        // The slots must outlive the sends from them, which Swift cannot see.
        try withExtendedLifetime(slots) { () throws(MPIError) in
            for messages in outgoing.values { for message in messages { try message.wait() } }
        }
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

    /// The inverse of `blockMajor`.
    private func localLayout(_ blocks: [Float], held: Range<Int>) -> [Float] {
        let shape = [problem.totalKeys / max(1, problem.sequenceLength(keys: true)), held.count, problem.kvHeads, problem.headDim]
        guard shape[0] > 1 else { return blocks }
        var local = [Float](repeating: 0, count: blocks.count)
        for block in layout.ownedBlocks(rank) {
            let keys = layout.blocks[block], offset = self.offset(block, in: held)
            let slice = AxisSlice(shape: shape, axis: 1, range: keys.lowerBound - held.lowerBound..<keys.upperBound - held.lowerBound)
            slice.scatter(Array(blocks[offset..<offset + slice.elementCount]), into: &local)
        }
        return local
    }
}
