import FlashAttention
import Testing

// Each tile owns what it writes and sums in a fixed order, so o, lse, dQ, dK and dV must be
// bitwise identical for any thread count. The cases span several 64-row/64-key blocks (N ≥ 200),
// with causal GQA, where dK/dV gather over the group, and a window with Nq ≠ Nk.

private let threadCases: [Case] = [
    Case(batch: 2, seqlenQ: 200, seqlenK: 200, heads: 4, kvHeads: 2, headDim: 40, causal: true),
    Case(seqlenQ: 130, seqlenK: 260, heads: 3, kvHeads: 1, headDim: 33, windowLeft: 16, windowRight: 4),
    Case(seqlenQ: 70, seqlenK: 200, heads: 2, kvHeads: 1, headDim: 128),
]

@Test("1, 2 and 5 threads give bitwise identical results, on every instruction set", arguments: threadCases)
func threadCountDoesNotChangeBits(_ c: Case) throws {
    let problem = try c.problem()
    let x = c.inputs()
    for isa in InstructionSet.supported {
        let configuration = KernelConfiguration(instructionSet: isa, tiling: KernelConfiguration.current.tiling)
        func run(_ threads: Int) -> [[UInt32]] {
            let (o, lse) = FlashAttention.forward(problem, q: x.q, k: x.k, v: x.v, threads: threads, configuration: configuration)
            let g = FlashAttention.backward(problem, q: x.q, k: x.k, v: x.v, o: o, lse: lse, dO: x.dO, threads: threads,
                                            configuration: configuration)
            return [o, lse, g.dQ, g.dK, g.dV].map { $0.map(\.bitPattern) }
        }
        let single = run(1)
        // Guard against comparing two empty or all-NaN results: the single-thread run is correct.
        expectMatches(try runKernels(c, x, threads: 1, configuration: configuration), runReference(c, x),
                      forward: forwardTolerance, backward: backwardTolerance)
        for threads in [2, 5] {
            let multi = run(threads)
            for (name, (a, b)) in zip(["o", "lse", "dQ", "dK", "dV"], zip(single, multi)) {
                #expect(a == b, "\(name) with \(threads) threads differs from 1 thread on \(isa)")
            }
        }
    }
}
