import Distributed
import Foundation
import TensorSlices
import Testing

// The re-shard's slices (which rows each rank holds, which heads it is sent), and its exchange on
// one rank, where MPI's all-to-all is the identity. The exchange across ranks is checked under
// mpirun by Tests/mpi/run.sh (reshard-check).

/// Every element holds its own flat index, so a misplaced value shows.
private func indexed(_ shape: [Int]) -> [Float] { (0..<shape.reduce(1, *)).map(Float.init) }

@Test("sequence shards cover the rows in rank order, even when the ranks outnumber them",
      arguments: [[2, 7, 5, 3], [1, 10, 3, 4], [3, 1, 2, 2], [1, 0, 3, 2]], 1...5)
func shardsCoverRows(shape: [Int], ranks: Int) {
    let reshard = Reshard(shape: shape, ranks: ranks)
    #expect((0..<ranks).flatMap { Array(reshard.rows($0)) } == Array(0..<shape[1]))
    let whole = indexed(shape)
    // Scattering every shard back into an empty tensor rebuilds the whole one.
    var rebuilt = [Float](repeating: -1, count: whole.count)
    for rank in 0..<ranks {
        let slice = reshard.shardSlice(rank)
        #expect(slice.localShape == [shape[0], reshard.rows(rank).count, shape[2], shape[3]])
        slice.scatter(slice.gather(whole), into: &rebuilt)
    }
    #expect(rebuilt == whole)
}

@Test("on one rank, toHeads gives the asked heads of every row and toSequence puts them back")
func singleRankExchange() throws {
    let communicator = try Communicator.world(environment: [:])
    #expect(communicator.size == 1 && !communicator.isDistributed)
    let shape = [2, 7, 5, 3]
    let whole = indexed(shape)
    let reshard = Reshard(shape: shape, ranks: 1)
    let some = try reshard.toHeads(whole, heads: { _ in 1..<4 }, on: communicator)
    #expect(some == AxisSlice(shape: shape, axis: 2, range: 1..<4).gather(whole))
    let all = try reshard.toHeads(whole, heads: { _ in 0..<5 }, on: communicator)
    #expect(try reshard.toSequence(all, heads: { _ in 0..<5 }, on: communicator) == whole)
}
