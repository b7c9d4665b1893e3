import Distributed
import Foundation
import FlashAttention
import Testing

// Every partition run on a single-rank communicator (no MPI) gives the threaded library's bits:
// the slices it asks for, its forward and its backward, end to end.

private func inputs(_ count: Int, seed: Int) -> [Float] {
    (0..<count).map { Float(sin(Double($0 * 7 + seed * 131) * 0.61)) }
}

@Test("heads, sequence, ring and hybrid on one rank equal the threaded forward and backward",
      arguments: [false, true])
func singleRankPartitions(causal: Bool) throws {
    let communicator = try Communicator.world(environment: [:])
    let problem = try AttentionProblem(batch: 2, seqlenQ: 37, seqlenK: 29, heads: 6, kvHeads: 2, headDim: 24,
                                       options: AttentionOptions(softmaxScale: 0.2, causal: causal, softcap: 5))
    let q = inputs(problem.queryElements, seed: 1), k = inputs(problem.keyElements, seed: 2)
    let v = inputs(problem.keyElements, seed: 3), dO = inputs(problem.queryElements, seed: 4)
    let expected = FlashAttention.forwardWithResidual(problem, q: q, k: k, v: v, threads: 2)
    let grads = FlashAttention.backward(problem, q: q, k: k, v: v, o: expected.o, lse: expected.lse,
                                        lseResidual: expected.lseResidual, dO: dO, threads: 2)
    let partitions: [(String, any AttentionPartition)] = [
        ("heads", try HeadParallelAttention(problem: problem, communicator: communicator, threads: 2)),
        ("sequence", try SequenceParallelAttention(problem: problem, communicator: communicator, threads: 2)),
        ("ring", RingAttention(problem: problem, communicator: communicator, threads: 2)),
        ("hybrid", try HybridAttention(problem: problem, communicator: communicator, threads: 2, ulysses: 1)),
    ]
    for (name, partition) in partitions {
        let parts = { (values: [Float]) in partition.queries.flatMap { $0.gather(values) } }
        let forward = try partition.forward(q: parts(q), k: partition.keys.gather(k), v: partition.keys.gather(v))
        #expect(forward.o == parts(expected.o), "\(name) o")
        #expect(forward.lse == partition.lse.flatMap { $0.gather(expected.lse) }, "\(name) lse")
        #expect(forward.lseResidual == partition.lse.flatMap { $0.gather(expected.lseResidual) }, "\(name) lse residual")
        let backward = try partition.backward(forward.saved, dO: parts(dO))
        #expect(backward.dQ == parts(grads.dQ), "\(name) dq")
        #expect(backward.dK == partition.keyGradients.gather(grads.dK), "\(name) dk")
        #expect(backward.dV == partition.keyGradients.gather(grads.dV), "\(name) dv")
    }
}
