import CMPI
import Foundation
import TensorSlices

/// The all-to-all of sequence parallelism (DeepSpeed-Ulysses): between sequence shards of every
/// head and the full sequence of some heads.
///
/// A tensor is `(batch, seqlen, heads, headDim)`; in sequence shards rank r holds rows
/// `rows(r)` (the rows split as evenly as possible) of every head. `toHeads` gives each rank the
/// full sequence of the heads it asks for (a head may go to several ranks, as a kv head read by
/// query heads on several ranks does); `toSequence` is the way back, where each head comes from
/// exactly one rank. Values are only copied, never combined, so a round trip is exact.
public struct Reshard: Sendable {
    /// `(batch, seqlen, heads, headDim)` of the whole tensor.
    public let shape: [Int]
    public let ranks: Int

    public init(shape: [Int], ranks: Int) {
        precondition(shape.count == 4, "tensors are (batch, seqlen, heads, headDim)")
        (self.shape, self.ranks) = (shape, ranks)
    }

    /// Rows of the sequence shard of `rank`.
    public func rows(_ rank: Int) -> Range<Int> { EvenSplit(count: shape[1], parts: ranks).range(rank) }

    /// The shard of the calling rank, `(batch, rows, heads, headDim)`, as rows of the whole tensor.
    public func shardSlice(_ rank: Int) -> AxisSlice { AxisSlice(shape: shape, axis: 1, range: rows(rank)) }

    /// From this rank's sequence shard to the full sequence of `heads(rank)`: `(batch, seqlen,
    /// heads(rank).count, headDim)`.
    public func toHeads(_ shard: [Float], heads: (Int) -> Range<Int>, on communicator: Communicator) throws(MPIError) -> [Float] {
        let mine = shardSlice(communicator.rank)
        let send = (0..<ranks).map { AxisSlice(shape: mine.localShape, axis: 2, range: heads($0)) }
        let wanted = heads(communicator.rank)
        let full = AxisSlice.whole([shape[0], shape[1], wanted.count, shape[3]])
        let receive = (0..<ranks).map { AxisSlice(shape: full.shape, axis: 1, range: rows($0)) }
        return try exchange(shard, sending: send, receiving: receive, into: full, on: communicator)
    }

    /// From the full sequence of `heads(rank)` (each head held by exactly one rank) back to this
    /// rank's sequence shard of every head.
    public func toSequence(_ local: [Float], heads: (Int) -> Range<Int>, on communicator: Communicator) throws(MPIError) -> [Float] {
        let held = heads(communicator.rank)
        let localShape = [shape[0], shape[1], held.count, shape[3]]
        let send = (0..<ranks).map { AxisSlice(shape: localShape, axis: 1, range: rows($0)) }
        let shard = AxisSlice.whole(shardSlice(communicator.rank).localShape)
        let receive = (0..<ranks).map { AxisSlice(shape: shard.shape, axis: 2, range: heads($0)) }
        return try exchange(local, sending: send, receiving: receive, into: shard, on: communicator)
    }

    /// Packs `send[t]` of `local` for each rank t, exchanges, and unpacks what rank s sent into
    /// `receive[s]` of the result: one MPI_Alltoallv whose unit is one head vector.
    private func exchange(_ local: [Float], sending send: [AxisSlice], receiving receive: [AxisSlice],
                          into result: AxisSlice, on communicator: Communicator) throws(MPIError) -> [Float] {
        let sendCounts = send.map(\.elementCount), receiveCounts = receive.map(\.elementCount)
        var outgoing = [Float](repeating: 0, count: sendCounts.reduce(0, +))
        var offset = 0
        local.withUnsafeBufferPointer { local in
            outgoing.withUnsafeMutableBufferPointer { outgoing in
                for slice in send where slice.elementCount > 0 {
                    slice.gather(from: local.baseAddress!, into: outgoing.baseAddress! + offset)
                    offset += slice.elementCount
                }
            }
        }
        let incoming = try communicator.allToAll(outgoing, sendCounts: sendCounts, receiveCounts: receiveCounts, unit: shape[3])
        var whole = [Float](repeating: 0, count: result.elementCount)
        offset = 0
        incoming.withUnsafeBufferPointer { incoming in
            whole.withUnsafeMutableBufferPointer { whole in
                for slice in receive where slice.elementCount > 0 {
                    slice.scatter(incoming.baseAddress! + offset, into: whole.baseAddress!)
                    offset += slice.elementCount
                }
            }
        }
        return whole
    }
}

extension Communicator {
    /// MPI_Alltoallv of floats: `sendCounts[t]` consecutive floats of `values` go to rank t, and
    /// what rank s sends lands after what ranks below s sent. Counts are multiples of `unit`,
    /// which is the element MPI counts in, so tensors far beyond 2³¹ floats still fit its ints.
    func allToAll(_ values: [Float], sendCounts: [Int], receiveCounts: [Int], unit: Int) throws(MPIError) -> [Float] {
        recordTraffic { $0.allToAllBytes += Int64(values.count * MemoryLayout<Float>.size) }
        guard let comm else { return values }
        var vector = cmpi_datatype_null()
        try Communicator.check(MPI_Type_contiguous(Int32(unit), cmpi_float(), &vector), "MPI_Type_contiguous")
        defer { MPI_Type_free(&vector) }
        try Communicator.check(MPI_Type_commit(&vector), "MPI_Type_commit")

        func units(_ counts: [Int]) throws(MPIError) -> (counts: [Int32], offsets: [Int32]) {
            var result: (counts: [Int32], offsets: [Int32]) = ([], [])
            var offset = 0
            for count in counts {
                result.counts.append(try Int32(count: count / unit))
                result.offsets.append(try Int32(count: offset / unit))
                offset += count
            }
            return result
        }
        let outgoing = try units(sendCounts), incoming = try units(receiveCounts)
        var received = [Float](repeating: 0, count: receiveCounts.reduce(0, +))
        let code = waiting {
            values.withUnsafeBufferPointer { send in
                received.withUnsafeMutableBufferPointer { receive in
                    MPI_Alltoallv(send.baseAddress, outgoing.counts, outgoing.offsets, vector,
                                  receive.baseAddress, incoming.counts, incoming.offsets, vector, comm)
                }
            }
        }
        try Communicator.check(code, "MPI_Alltoallv")
        recordTraffic { $0.bytesSent += Int64((sendCounts.reduce(0, +) - sendCounts[rank]) * MemoryLayout<Float>.size) }
        return received
    }
}
