import Foundation
import FlashAttention
import Testing

// The scale multiplies the scores before the mask, so negative scales flip the attention and a
// zero scale makes every visible key equally likely: O is then the mean of the visible V rows,
// lse = log(visible count), dQ = dK = 0 and dV[j] = Σ over rows i seeing j of dO[i] / count(i).
// These expectations are computed here by hand, independently of the reference.

@Test(arguments: [Float(-0.5), -3])
func negativeScaleMatchesReference(_ scale: Float) throws {
    let c = Case(batch: 2, seqlenQ: 65, seqlenK: 70, heads: 2, kvHeads: 1, headDim: 16, causal: true, scale: scale)
    let x = c.inputs()
    expectMatches(try runKernels(c, x), runReference(c, x), forward: forwardTolerance, backward: backwardTolerance)
}

/// Zero scale: (case, keys row i sees) with the masks written out by hand.
private let zeroScaleCases: [(Case, @Sendable (Int) -> Range<Int>)] = [
    (Case(seqlenQ: 70, seqlenK: 70, heads: 2, kvHeads: 1, headDim: 8, causal: true, scale: 0), { 0..<$0 + 1 }),
    (Case(seqlenQ: 30, seqlenK: 100, heads: 1, kvHeads: 1, headDim: 5, windowLeft: 5, windowRight: -1, scale: 0),
     { max(0, $0 + 70 - 5)..<100 }),
]

@Test("zero scale gives uniform attention over the visible keys", arguments: 0..<zeroScaleCases.count)
func zeroScaleIsUniform(_ index: Int) throws {
    let (c, visible) = zeroScaleCases[index]
    let x = c.inputs()
    let out = try runKernels(c, x)
    let d = c.headDim, group = c.heads / c.kvHeads
    var expectedDV = [Double](repeating: 0, count: x.v.count)
    var expectedO = [Double](repeating: 0, count: x.q.count), expectedLSE = [Double](repeating: 0, count: out.lse.count)
    for h in 0..<c.heads {
        for i in 0..<c.seqlenQ {
            let keys = visible(i), base = (i * c.heads + h) * d
            expectedLSE[h * c.seqlenQ + i] = log(Double(keys.count))
            for j in keys {
                let kv = (j * c.kvHeads + h / group) * d
                for e in 0..<d {
                    expectedO[base + e] += Double(x.v[kv + e]) / Double(keys.count)
                    expectedDV[kv + e] += Double(x.dO[base + e]) / Double(keys.count)
                }
            }
        }
    }
    expectClose(out.o, expectedO, tolerance: forwardTolerance, "o")
    expectClose(out.lse, expectedLSE, tolerance: forwardTolerance, "lse")
    expectClose(out.dV, expectedDV, tolerance: backwardTolerance, "dV")
    #expect(out.dQ.allSatisfy { $0 == 0 } && out.dK.allSatisfy { $0 == 0 })
}
