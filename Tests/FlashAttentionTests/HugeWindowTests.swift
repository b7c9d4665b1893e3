import FlashAttention
import Testing

// A window side at least as long as the sequences is unbounded: the largest values --window
// accepts (up to Int.max) give exactly the outputs of -1, forward and backward, never a
// silently masked-out result from overflowed index arithmetic.

private let large = [Int.max, Int.max - 1, Int.max - 40, 1 << 62, 97]

@Test(arguments: [(false, 0), (false, 1), (true, 0), (true, 1)])
func hugeWindowIsUnbounded(causal: Bool, side: Int) throws {
    for seqlens in [(37, 53), (53, 37)] {
        for value in large {
            var huge = Case(batch: 2, seqlenQ: seqlens.0, seqlenK: seqlens.1, heads: 2, kvHeads: 1, headDim: 8, causal: causal)
            var unbounded = huge
            // One side huge, the other bounded (3) or huge too: each must act as -1.
            (huge.windowLeft, huge.windowRight) = side == 0 ? (value, 3) : (value, value)
            (unbounded.windowLeft, unbounded.windowRight) = side == 0 ? (-1, 3) : (-1, -1)
            let x = huge.inputs()
            let expected = try runKernels(unbounded, x), found = try runKernels(huge, x)
            #expect(found.o == expected.o && found.lse == expected.lse && found.dQ == expected.dQ
                    && found.dK == expected.dK && found.dV == expected.dV, "\(huge.testDescription)")
        }
    }
}

@Test func windowOfTheSequenceLengthIsUnboundedToo() throws {
    // Exactly seqlen_k to the left and seqlen_q to the right already see every key.
    var exact = Case(seqlenQ: 20, seqlenK: 30, headDim: 4, windowLeft: 30, windowRight: 20)
    let x = exact.inputs()
    let found = try runKernels(exact, x)
    (exact.windowLeft, exact.windowRight) = (-1, -1)
    #expect(try runKernels(exact, x).o == found.o)
}
