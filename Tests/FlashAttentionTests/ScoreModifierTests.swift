import AttentionReference
import FlashAttention
import Testing

// Softcap, ALiBi and dropout against the float64 reference, forward and backward. The bounds are
// the grid tests' (1e-5 forward, 2e-5 backward, relative to max(1, max|ref|)): float32 meets them
// with a margin of ~10×, and a wrong sign, a missing chain-rule factor or a misplaced bias does not.

@Suite struct ScoreModifierTests {
    static let cases: [Case] = [
        Case(seqlenQ: 150, seqlenK: 150, heads: 2, headDim: 64, scale: 0.125, softcap: 5),
        Case(batch: 2, seqlenQ: 77, seqlenK: 130, heads: 4, kvHeads: 2, headDim: 32, causal: true, softcap: 2),
        Case(seqlenQ: 140, seqlenK: 140, heads: 4, headDim: 32, causal: true,
             alibiSlopes: AlibiSlopes(values: [0.5, 0.25, 0.125, 0.0625], heads: 4)),
        Case(batch: 2, seqlenQ: 100, seqlenK: 70, heads: 2, headDim: 16, windowLeft: 20, windowRight: 5,
             alibiSlopes: AlibiSlopes(values: [0.3, 0.1, 0.2, 0.05], heads: 2)),
        Case(seqlenQ: 90, seqlenK: 110, heads: 3, headDim: 40, causal: true, softcap: 3,
             alibiSlopes: AlibiSlopes(values: [0.2, 0.1, 0.05], heads: 3)),
        Case(seqlenQ: 130, seqlenK: 97, heads: 2, headDim: 64, dropout: Dropout(probability: 0.2, seed: 7)),
        Case(batch: 2, seqlenQ: 70, seqlenK: 140, heads: 4, kvHeads: 1, headDim: 33, causal: true, softcap: 4,
             alibiSlopes: AlibiSlopes(values: [0.1, 0.2, 0.3, 0.4], heads: 4), dropout: Dropout(probability: 0.5, seed: 99)),
    ]

    @Test("modifiers match the float64 reference", arguments: cases)
    func matchesReference(_ c: Case) throws {
        let x = c.inputs()
        expectMatches(try runKernels(c, x), runReference(c, x), forward: 1e-5, backward: 2e-5)
    }

    @Test func softcapBoundsEveryLogit() throws {
        // With inputs ×20 the raw scores reach hundreds; capped at 1 they lie within ±1 (+ ALiBi 0),
        // so every lse is at most log(seqlenK) + 1 (log 64 = 4.1589).
        let c = Case(seqlenQ: 64, seqlenK: 64, headDim: 16, inputScale: 20, softcap: 1)
        let out = try runKernels(c, c.inputs())
        #expect(out.lse.allSatisfy { $0 <= 4.1589 + 1 + 1e-5 })
        // Raw scores near 400 carry ~2e-5 of float32 rounding into the unsaturated logits, as any
        // float32 computation would: the backward bound is the large-logit one, not 2e-5.
        expectMatches(out, runReference(c, c.inputs()), forward: 1e-5, backward: 1e-4)
    }

    @Test func dropoutKeepsOneMinusPAndScalesByItsInverse() throws {
        let p: Float = 0.3
        let problem = try Case(seqlenQ: 512, seqlenK: 512, heads: 2, headDim: 8,
                               dropout: Dropout(probability: p, seed: 12345)).problem()
        for head in 0..<2 {
            let factors = FlashAttention.dropoutKeepFactors(problem, batch: 0, head: head)
            #expect(factors.count == 512 * 512)
            #expect(factors.allSatisfy { $0 == 0 || $0 == 1 / (1 - p) })
            // Kept count is Binomial(n, 1 − p): allow 5 standard deviations.
            let n = Double(factors.count), kept = Double(factors.filter { $0 != 0 }.count)
            let sd = (n * Double(p) * Double(1 - p)).squareRoot()
            #expect(abs(kept - n * Double(1 - p)) <= 5 * sd, "kept \(kept) of \(n)")
        }
    }

    @Test func dropoutMaskDependsOnSeedHeadAndBatchOnly() throws {
        func mask(seed: UInt64, batch: Int, head: Int, threads: Int = 1) throws -> [Float] {
            let problem = try Case(batch: 2, seqlenQ: 40, seqlenK: 50, heads: 2, headDim: 8,
                                   dropout: Dropout(probability: 0.5, seed: seed)).problem()
            return FlashAttention.dropoutKeepFactors(problem, batch: batch, head: head)
        }
        #expect(try mask(seed: 1, batch: 0, head: 0) == mask(seed: 1, batch: 0, head: 0))
        #expect(try mask(seed: 1, batch: 0, head: 0) != mask(seed: 2, batch: 0, head: 0))
        #expect(try mask(seed: 1, batch: 0, head: 0) != mask(seed: 1, batch: 0, head: 1))
        #expect(try mask(seed: 1, batch: 0, head: 0) != mask(seed: 1, batch: 1, head: 0))
    }

    @Test func dropoutResultsAreThreadIndependent() throws {
        let c = Case(batch: 2, seqlenQ: 200, seqlenK: 160, heads: 4, kvHeads: 2, headDim: 48, causal: true,
                     softcap: 3, dropout: Dropout(probability: 0.1, seed: 3))
        let x = c.inputs()
        let one = try runKernels(c, x, threads: 1), three = try runKernels(c, x, threads: 3)
        for (a, b) in [(one.o, three.o), (one.lse, three.lse), (one.dQ, three.dQ), (one.dK, three.dK), (one.dV, three.dV)] {
            #expect(a.map(\.bitPattern) == b.map(\.bitPattern))
        }
    }

    @Test func headsComputedApartMatchTheWholeProblem() throws {
        // A rank that computes heads 2 and 3 of 4 passes firstHead 2: its ALiBi slopes and dropout
        // mask, and so its outputs, must be those of heads 2 and 3 of the whole problem.
        let slopes = AlibiSlopes(values: [0.4, 0.3, 0.2, 0.1], heads: 4)
        let options = AttentionOptions(softmaxScale: 0.25, causal: true, alibiSlopes: slopes,
                                       dropout: Dropout(probability: 0.25, seed: 11))
        let whole = try AttentionProblem(batch: 1, seqlenQ: 60, seqlenK: 60, heads: 4, kvHeads: 4, headDim: 16, options: options)
        let part = try AttentionProblem(batch: 1, seqlenQ: 60, seqlenK: 60, heads: 2, kvHeads: 2, headDim: 16,
                                        firstHead: 2, options: options)
        var normals = SeededNormals(seed: 5)
        let q = normals.next(whole.queryElements), k = normals.next(whole.keyElements), v = normals.next(whole.keyElements)
        let wholeOut = FlashAttention.forward(whole, q: q, k: k, v: v, threads: 2)
        func lastTwoHeads(_ x: [Float]) -> [Float] {
            stride(from: 0, to: x.count, by: 4 * 16).flatMap { x[$0 + 32..<$0 + 64] }
        }
        let partOut = FlashAttention.forward(part, q: lastTwoHeads(q), k: lastTwoHeads(k), v: lastTwoHeads(v), threads: 2)
        #expect(partOut.o.map(\.bitPattern) == lastTwoHeads(wholeOut.o).map(\.bitPattern))
        #expect(FlashAttention.dropoutKeepFactors(part, batch: 0, head: 1) ==
                FlashAttention.dropoutKeepFactors(whole, batch: 0, head: 3))
    }

    @Test func invalidModifiersAreRejected() {
        #expect(throws: AttentionError.self) { try Case(seqlenQ: 4, seqlenK: 4, headDim: 8, softcap: -1).problem() }
        #expect(throws: AttentionError.self) {
            try Case(seqlenQ: 4, seqlenK: 4, headDim: 8, dropout: Dropout(probability: 1, seed: 0)).problem()
        }
        #expect(throws: AttentionError.self) {
            try Case(seqlenQ: 4, seqlenK: 4, heads: 2, headDim: 8, alibiSlopes: AlibiSlopes(values: [1], heads: 1)).problem()
        }
    }
}
