/// dK and dV of the GQA groups whose query heads span ranks.
///
/// Each rank forms its heads' contributions on their own (`.perQueryHead`) and sends them to the
/// rank that writes the group's kv head, which adds them in head order starting from zero:
/// ((0 + c₀) + c₁) + …, the very additions the kernel makes for a group it holds whole, so the
/// bits are those of a single process. Sends and receives are nonblocking and completed together,
/// so ranks that both send and receive never wait on each other.
struct SplitGroupReduction {
    let shapes: TensorShapes
    let assignment: HeadAssignment
    let communicator: Communicator
    private let transfers: Transfers
    /// This rank's own contributions to the groups it writes, by kv head.
    private var kept: [Int: (dK: [Float], dV: [Float])] = [:]

    init(shapes: TensorShapes, assignment: HeadAssignment, communicator: Communicator) {
        (self.shapes, self.assignment, self.communicator) = (shapes, assignment, communicator)
        transfers = Transfers(communicator)
    }

    /// Hands over the contributions of `heads` (part of `kvHead`'s group) to dK and dV,
    /// `(batch, seqlenK, heads.count, headDim)` and `(…, valueHeadDim)`.
    mutating func contribute(kvHead: Int, heads: Range<Int>, dK: [Float], dV: [Float]) throws(MPIError) {
        let writer = assignment.rank(owning: assignment.group(kvHead).lowerBound)
        if writer == communicator.rank {
            kept[kvHead] = (dK, dV)
        } else {
            try transfers.send(dK, to: writer, tag: 2 * kvHead)
            try transfers.send(dV, to: writer, tag: 2 * kvHead + 1)
        }
    }

    /// Receives the other ranks' contributions to the split groups among `written` and sums each
    /// group into its kv head of dK and dV, `(batch, seqlenK, written.count, headDim)` and `(…,
    /// valueHeadDim)`.
    func finish(written: Range<Int>, dK: inout [Float], dV: inout [Float]) throws(MPIError) {
        let rank = communicator.rank, own = assignment.heads(of: rank)
        var pieces: [(kvHead: Int, heads: Range<Int>, dK: Piece, dV: Piece)] = []
        for kvHead in written where !own.contains(assignment.group(kvHead).upperBound - 1) {
            let group = assignment.group(kvHead)
            for source in 0..<assignment.ranks {
                let theirs = assignment.heads(of: source).clamped(to: group)
                guard !theirs.isEmpty else { continue }
                if source == rank {
                    pieces.append((kvHead, theirs, .kept(kept[kvHead]!.dK), .kept(kept[kvHead]!.dV)))
                } else {
                    let rows = shapes.batch * shapes.seqlenK * theirs.count
                    pieces.append((kvHead, theirs,
                                   .received(try transfers.receive(count: rows * shapes.headDim, from: source, tag: 2 * kvHead)),
                                   .received(try transfers.receive(count: rows * shapes.valueHeadDim, from: source, tag: 2 * kvHead + 1))))
                }
            }
        }
        try transfers.waitAll()
        // dK and dV start at zero; pieces come in rank order, which is head order.
        for piece in pieces {
            add(piece.dK, heads: piece.heads.count, width: shapes.headDim, into: &dK, kvHead: piece.kvHead - written.lowerBound,
                of: written.count)
            add(piece.dV, heads: piece.heads.count, width: shapes.valueHeadDim, into: &dV, kvHead: piece.kvHead - written.lowerBound,
                of: written.count)
        }
    }

    private enum Piece {
        case kept([Float])
        case received(Int)
    }

    /// Adds each head of `piece` (rows `width` floats per head), in order, to kv head `kvHead` of `target`.
    private func add(_ piece: Piece, heads: Int, width d: Int, into target: inout [Float], kvHead: Int, of kvHeads: Int) {
        let rows = shapes.batch * shapes.seqlenK
        func add(_ source: UnsafeBufferPointer<Float>) {
            target.withUnsafeMutableBufferPointer { target in
                for row in 0..<rows {
                    let into = (row * kvHeads + kvHead) * d
                    for h in 0..<heads {
                        let from = (row * heads + h) * d
                        for c in 0..<d { target[into + c] += source[from + c] }
                    }
                }
            }
        }
        switch piece {
        case .kept(let values): values.withUnsafeBufferPointer { add($0) }
        case .received(let index): add(transfers.received(index))
        }
    }
}
