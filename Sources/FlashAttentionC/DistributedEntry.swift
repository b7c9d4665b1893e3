import CFlashdist
import CMPI
import Distributed
import FlashAttention
import TensorSlices

/// The partitions the C ABI offers, by their flashdist_partition values.
private func partition(_ kind: Int32, _ problem: AttentionProblem, _ communicator: Communicator,
                       threads: Int) throws -> any AttentionPartition {
    guard !problem.packedLSE else {
        throw CallFailure(status: FLASHDIST_INVALID_PROBLEM, message: "partitions through the C ABI take fixed-length batches only")
    }
    switch UInt32(bitPattern: kind) {
    case FLASHDIST_PARTITION_HEADS.rawValue:
        return try HeadParallelAttention(problem: problem, communicator: communicator, threads: threads)
    case FLASHDIST_PARTITION_SEQUENCE.rawValue:
        return try SequenceParallelAttention(problem: problem, communicator: communicator, threads: threads)
    default:
        throw CallFailure(status: FLASHDIST_INVALID_PROBLEM, message: "partition: \(kind) is neither heads (0) nor sequence (1)")
    }
}

/// Runs `body` on a duplicate of the caller's communicator, with this rank's side of the problem,
/// once every rank has checked its problem and buffers (`check`, given the side and the problem).
private func onRanks(_ problem: UnsafePointer<flashdist_problem>?, _ kind: Int32, _ comm: UnsafeMutableRawPointer?,
                     threads: Int32, check: (any AttentionPartition, AttentionProblem) throws -> Void,
                     _ body: (any AttentionPartition) throws -> Void) throws {
    guard let comm else { throw CallFailure(status: FLASHDIST_INVALID_BUFFER, message: "comm: NULL") }
    let communicator: Communicator
    do {
        communicator = try Communicator.duplicating(OpaquePointer(comm))
    } catch {
        throw CallFailure(status: FLASHDIST_MPI_ERROR, message: error.description)
    }
    defer { communicator.release() }
    let side = try communicator.agree {
        let whole = try described(problem)
        let side = try partition(kind, whole, communicator, threads: try checkedThreads(threads))
        try check(side, whole)
        return side
    }
    do {
        try body(side)
    } catch let error as MPIError {
        throw CallFailure(status: FLASHDIST_MPI_ERROR, message: error.description)
    }
}

private func slice(_ slice: AxisSlice) -> flashdist_slice {
    flashdist_slice(axis: Int64(slice.axis), start: Int64(slice.range.lowerBound), end: Int64(slice.range.upperBound))
}

private extension [AxisSlice] {
    var elementCount: Int { reduce(0) { $0 + $1.elementCount } }
    /// Elements of the same parts of o or dout (whose last axis is `width`, the value head dim).
    func elementCount(lastAxis width: Int) -> Int { reduce(0) { $0 + $1.withLastAxis(width).elementCount } }
}

private func array(_ pointer: UnsafePointer<Float>, _ count: Int64) -> [Float] {
    Array(UnsafeBufferPointer(start: pointer, count: Int(count)))
}

private func copy(_ values: [Float], to pointer: UnsafeMutablePointer<Float>) {
    values.withUnsafeBufferPointer { if let base = $0.baseAddress { pointer.update(from: base, count: $0.count) } }
}

@_cdecl("flashdist_shard_mpi")
public func flashdistShardMPI(_ problem: UnsafePointer<flashdist_problem>?, _ kind: Int32, _ comm: UnsafeMutableRawPointer?,
                              _ shard: UnsafeMutablePointer<flashdist_shard>?,
                              _ message: UnsafeMutablePointer<CChar>?, _ messageSize: Int) -> Int32 {
    reportingFailures(message, messageSize) {
        guard let shard else { throw CallFailure(status: FLASHDIST_INVALID_BUFFER, message: "shard: NULL") }
        try onRanks(problem, kind, comm, threads: 1, check: { _, _ in }) { side in
            // The heads and sequence partitions, the ones offered here, hold one part of q and of lse.
            shard.pointee = flashdist_shard(queries: slice(side.queries[0]), keys: slice(side.keys),
                                            key_gradients: slice(side.keyGradients), lse: slice(side.lse[0]))
        }
    }
}

@_cdecl("flashdist_forward_mpi")
public func flashdistForwardMPI(_ problem: UnsafePointer<flashdist_problem>?, _ kind: Int32, _ comm: UnsafeMutableRawPointer?,
                                _ q: UnsafePointer<Float>?, _ qCount: Int64, _ k: UnsafePointer<Float>?, _ kCount: Int64,
                                _ v: UnsafePointer<Float>?, _ vCount: Int64,
                                _ o: UnsafeMutablePointer<Float>?, _ oCount: Int64,
                                _ lse: UnsafeMutablePointer<Float>?, _ lseCount: Int64,
                                _ threads: Int32, _ message: UnsafeMutablePointer<CChar>?, _ messageSize: Int) -> Int32 {
    reportingFailures(message, messageSize) {
        var buffers: (q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                      o: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>)?
        try onRanks(problem, kind, comm, threads: threads, check: { side, whole in
            let dv = whole.valueHeadDim
            buffers = (try checked(q, count: qCount, expected: side.queries.elementCount, name: "q"),
                       try checked(k, count: kCount, expected: side.keys.elementCount, name: "k"),
                       try checked(v, count: vCount, expected: side.keys.withLastAxis(dv).elementCount, name: "v"),
                       try checked(o, count: oCount, expected: side.queries.elementCount(lastAxis: dv), name: "o"),
                       try checked(lse, count: lseCount, expected: side.lse.elementCount, name: "lse"))
        }) { side in
            let b = buffers!
            let result = try side.forward(q: array(b.q, qCount), k: array(b.k, kCount), v: array(b.v, vCount))
            copy(result.o, to: b.o)
            copy(result.lse, to: b.lse)
        }
    }
}

@_cdecl("flashdist_backward_mpi")
public func flashdistBackwardMPI(_ problem: UnsafePointer<flashdist_problem>?, _ kind: Int32, _ comm: UnsafeMutableRawPointer?,
                                 _ q: UnsafePointer<Float>?, _ qCount: Int64, _ k: UnsafePointer<Float>?, _ kCount: Int64,
                                 _ v: UnsafePointer<Float>?, _ vCount: Int64,
                                 _ o: UnsafePointer<Float>?, _ oCount: Int64, _ lse: UnsafePointer<Float>?, _ lseCount: Int64,
                                 _ dO: UnsafePointer<Float>?, _ dOCount: Int64,
                                 _ dQ: UnsafeMutablePointer<Float>?, _ dQCount: Int64,
                                 _ dK: UnsafeMutablePointer<Float>?, _ dKCount: Int64,
                                 _ dV: UnsafeMutablePointer<Float>?, _ dVCount: Int64,
                                 _ threads: Int32, _ message: UnsafeMutablePointer<CChar>?, _ messageSize: Int) -> Int32 {
    reportingFailures(message, messageSize) {
        var inputs: [UnsafePointer<Float>] = []
        var outputs: [UnsafeMutablePointer<Float>] = []
        try onRanks(problem, kind, comm, threads: threads, check: { side, whole in
            let (rows, keys, lseRows) = (side.queries.elementCount, side.keys.elementCount, side.lse.elementCount)
            let dv = whole.valueHeadDim
            let (outputRows, values) = (side.queries.elementCount(lastAxis: dv), side.keys.withLastAxis(dv).elementCount)
            inputs = [try checked(q, count: qCount, expected: rows, name: "q"),
                      try checked(k, count: kCount, expected: keys, name: "k"),
                      try checked(v, count: vCount, expected: values, name: "v"),
                      try checked(o, count: oCount, expected: outputRows, name: "o"),
                      try checked(lse, count: lseCount, expected: lseRows, name: "lse"),
                      try checked(dO, count: dOCount, expected: outputRows, name: "dout")]
            outputs = [try checked(dQ, count: dQCount, expected: rows, name: "dq"),
                       try checked(dK, count: dKCount, expected: side.keyGradients.elementCount, name: "dk"),
                       try checked(dV, count: dVCount, expected: side.keyGradients.withLastAxis(dv).elementCount, name: "dv")]
        }) { side in
            let counts = [qCount, kCount, vCount, oCount, lseCount, dOCount]
            let a = zip(inputs, counts).map { array($0, $1) }
            let saved = try side.restore(q: a[0], k: a[1], v: a[2], o: a[3], lse: a[4])
            let gradients = try side.backward(saved, dO: a[5])
            for (values, pointer) in zip([gradients.dQ, gradients.dK, gradients.dV], outputs) { copy(values, to: pointer) }
        }
    }
}
