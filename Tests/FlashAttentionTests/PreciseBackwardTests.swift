import FlashAttention
import Testing

// Logits of magnitude ~10³ (as the golden case huge_logits): lse's float32 rounding (~3e-5 at
// 500) becomes a relative error of every P the backward recomputes as e^(S − lse). With the
// forward's residual r = lse₆₄ − lse the backward forms e^((S − lse) − r) instead and keeps the
// forward's accuracy.
//
// q and k hold integers in [−30, 30] and the scale is 1/8, so every score (|Σ q·k| < 2²⁴, times
// 2⁻³) is exact in float32 and equal to the float64 reference's: what is left of the error is the
// softmax's own, so the test sees the residual's effect and nothing else.

private let hugeLogits = Case(seqlenQ: 80, seqlenK: 200, heads: 2, kvHeads: 2, headDim: 64, scale: 0.125, seed: 31)

private func integerInputs(_ c: Case) -> Inputs {
    var x = c.inputs()
    func integers(_ values: [Float]) -> [Float] { values.map { max(-30, min(30, ($0 * 12).rounded())) } }
    (x.q, x.k) = (integers(x.q), integers(x.k))
    return x
}

@Test("precise backward: at large logits dV keeps float32 accuracy with lse's residual, and loses it without")
func preciseBackward() throws {
    let c = hugeLogits, x = integerInputs(c)
    let expected = runReference(c, x)
    #expect(magnitude(expected.lse) > 500, "the logits are not large")
    let precise = try runKernels(c, x), plain = try runKernels(c, x, residual: false)
    let (preciseError, plainError) = (maxAbsDifference(precise.dV, expected.dV), maxAbsDifference(plain.dV, expected.dV))
    #expect(preciseError < 5e-6, "dV error \(preciseError) with the residual")
    #expect(plainError > 10 * preciseError, "dV error \(plainError) without the residual against \(preciseError) with it")
    // The forward is the same either way: the residual only adds to what the backward knows.
    #expect(precise.o == plain.o && precise.lse == plain.lse)
}

@Test("precise backward: lse plus its residual is the float64 lse of the forward's (here exact) scores")
func residualIsRoundingError() throws {
    let c = hugeLogits, x = integerInputs(c), problem = try c.problem()
    let (_, lse, residual) = FlashAttention.forwardWithResidual(problem, q: x.q, k: x.k, v: x.v, threads: 2)
    let expected = runReference(c, x).lse
    for (index, exact) in expected.enumerated() {
        // lse = m + log ℓ rounds twice (log ℓ, then the sum): within an ulp of the exact value.
        #expect(abs(residual[index]) <= lse[index].ulp)
        #expect(abs(Double(lse[index]) + Double(residual[index]) - exact) < 1e-9 * abs(exact))
    }
}
