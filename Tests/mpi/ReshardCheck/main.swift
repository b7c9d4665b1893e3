// Run under mpirun by Tests/mpi/run.sh: re-shards tensors whose sequence length the rank count
// does not divide (and shorter than it, and with fewer heads than ranks) from sequence shards to
// heads and back, and checks every value lands where it should and the round trip is exact.
import Distributed
import Foundation
import TensorSlices

/// A tensor whose every element holds its own flat index, so a misplaced value shows.
func indexed(_ shape: [Int]) -> [Float] { (0..<shape.reduce(1, *)).map(Float.init) }

func check(shape: [Int], groupSize: Int, on communicator: Communicator) throws -> [String] {
    let (rank, ranks) = (communicator.rank, communicator.size)
    let whole = indexed(shape)
    let reshard = Reshard(shape: shape, ranks: ranks)
    let assignment = HeadAssignment(heads: shape[2] * groupSize, kvHeads: shape[2], ranks: ranks)
    let shard = reshard.shardSlice(rank).gather(whole)
    var failures: [String] = []
    // Heads as query heads (each to one rank) and as kv heads (each to every rank that reads it).
    let wants: [(String, (Int) -> Range<Int>, (Int) -> Range<Int>)] = [
        ("owned heads", { EvenSplit(count: shape[2], parts: ranks).range($0) }, { EvenSplit(count: shape[2], parts: ranks).range($0) }),
        ("kv heads read", assignment.kvHeadsRead(by:), assignment.kvHeadsWritten(by:)),
    ]
    for (name, wanted, provided) in wants {
        let heads = try reshard.toHeads(shard, heads: wanted, on: communicator)
        if heads != AxisSlice(shape: shape, axis: 2, range: wanted(rank)).gather(whole) {
            failures.append("\(name): toHeads misplaced values")
        }
        let back = try reshard.toSequence(AxisSlice(shape: shape, axis: 2, range: provided(rank)).gather(whole),
                                          heads: provided, on: communicator)
        if back != shard { failures.append("\(name): toSequence misplaced values") }
    }
    let owned = { (r: Int) in EvenSplit(count: shape[2], parts: ranks).range(r) }
    let roundTrip = try reshard.toSequence(try reshard.toHeads(shard, heads: owned, on: communicator), heads: owned, on: communicator)
    if roundTrip != shard { failures.append("round trip is not exact") }
    return failures.map { "rank \(rank), shape \(shapeText(shape)): \($0)" }
}

let communicator = try Communicator.world(environment: ProcessInfo.processInfo.environment)
var failed = false
// (batch, seqlen, heads, headDim), and the GQA group size when the heads are taken as kv heads.
for (shape, groupSize) in [([2, 7, 5, 3], 1), ([1, 10, 3, 4], 2), ([3, 1, 2, 2], 4), ([1, 0, 3, 2], 3), ([2, 13, 1, 5], 6)] {
    let failures = try check(shape: shape, groupSize: groupSize, on: communicator)
    for line in failures { print("FAIL reshard: \(line)") }
    let anyFailed = try communicator.allgather([Int64(failures.count)]).reduce(0, +) > 0
    if communicator.rank == 0 && !anyFailed { print("ok   reshard \(shapeText(shape)) on \(communicator.size) ranks") }
    failed = failed || anyFailed
}
communicator.finalize()
exit(failed ? 1 : 0)
