import AttentionReference
import FlashAttention
import Testing

// Central finite differences of L = Σ dO ∘ O, evaluated in float64 by the reference's forward,
// check the reference's analytic backward (so the reference itself is trusted), and then the
// kernels' gradients are checked against that analytic backward on the same tiny problems.
//
// The reference takes float32 inputs, so the inputs are rounded to multiples of 2⁻⁸ (|x| < 8) and
// the step is 2⁻¹⁴: x ± eps is then exact in float32 and the loss is a float64 function of exactly
// the perturbed values. Truncation error is ~eps²·L‴ ≈ 1e-8, rounding ~1e-16·|L|/eps ≈ 1e-12.
// Under dropout the mask is fixed by the seed, so the same check covers the backward's
// regenerated mask.

private let eps = 0x1p-14

private let tinyCases: [Case] = [
    // GQA, causal with Nq < Nk.
    Case(seqlenQ: 3, seqlenK: 4, heads: 2, kvHeads: 1, headDim: 3, causal: true, seed: 7),
    // Window with Nq > Nk: rows 0 and 1 see no key; non-default scale; two batch entries.
    Case(batch: 2, seqlenQ: 5, seqlenK: 3, heads: 2, kvHeads: 2, headDim: 2, windowLeft: 1, windowRight: 0,
         scale: 0.8, seed: 8),
    // Negative scale, right-only window.
    Case(seqlenQ: 4, seqlenK: 4, heads: 3, kvHeads: 1, headDim: 4, windowLeft: -1, windowRight: 1,
         scale: -0.6, seed: 9),
    // Dropout at a fixed seed: the reference applies the library's keep mask, so the loss is a
    // smooth function of q, k, v and its gradient is the backward under that same mask.
    Case(batch: 2, seqlenQ: 5, seqlenK: 6, heads: 2, kvHeads: 1, headDim: 3, causal: true, seed: 10,
         dropout: Dropout(probability: 0.3, seed: 99)),
    // Dropout with softcap and per-(batch, head) ALiBi slopes.
    Case(batch: 2, seqlenQ: 4, seqlenK: 4, heads: 2, kvHeads: 2, headDim: 2, seed: 11, softcap: 1.5,
         alibiSlopes: AlibiSlopes(values: [0.5, 0.25, 0.125, 1], heads: 2), dropout: Dropout(probability: 0.5, seed: 3)),
    // Sinks (on the 2⁻⁸ grid) with a causal Nq > Nk: row 0 sees no key and has only its sink.
    Case(batch: 2, seqlenQ: 4, seqlenK: 3, heads: 2, kvHeads: 1, headDim: 3, causal: true, seed: 12, sinks: [0.75, -1.5]),
    // v with a head dim of its own (5 against q, k's 3), GQA, causal.
    Case(seqlenQ: 4, seqlenK: 5, heads: 2, kvHeads: 1, headDim: 3, valueHeadDim: 5, causal: true, seed: 12),
]

/// Inputs on the 2⁻⁸ grid, clamped inside (−8, 8), so that ±eps stays exact in float32.
private func gridInputs(_ c: Case) -> Inputs {
    func snap(_ values: [Float]) -> [Float] { values.map { max(-7.9, min(7.9, ($0 * 256).rounded() / 256)) } }
    let x = c.inputs()
    return Inputs(q: snap(x.q), k: snap(x.k), v: snap(x.v), dO: snap(x.dO))
}

/// L = Σ dO ∘ O in float64.
private func loss(_ c: Case, _ x: Inputs) -> Double {
    let reference = c.reference(x)
    var total = 0.0
    for b in 0..<c.batch {
        for i in 0..<c.seqlenQ {
            for h in 0..<c.heads {
                let o = reference.forwardRow(batch: b, head: h, row: i).o
                let base = ((b * c.seqlenQ + i) * c.heads + h) * c.valueDim
                for e in 0..<c.valueDim { total += Double(x.dO[base + e]) * o[e] }
            }
        }
    }
    return total
}

/// ∂L/∂x for every entry of q, k or v (picked by the key path), by central differences.
private func numericGradient(_ c: Case, _ x: Inputs, _ tensor: WritableKeyPath<Inputs, [Float]>) -> [Double] {
    (0..<x[keyPath: tensor].count).map { index in
        var plus = x, minus = x
        plus[keyPath: tensor][index] += Float(eps)
        minus[keyPath: tensor][index] -= Float(eps)
        precondition(Double(plus[keyPath: tensor][index]) - Double(x[keyPath: tensor][index]) == eps, "step not exact")
        return (loss(c, plus) - loss(c, minus)) / (2 * eps)
    }
}

@Test("reference backward equals finite differences of its forward", arguments: tinyCases)
func referenceGradientsMatchFiniteDifferences(_ c: Case) {
    let x = gridInputs(c)
    let analytic = runReference(c, x)
    for (name, tensor, expected) in [("dQ", \Inputs.q, analytic.dQ), ("dK", \Inputs.k, analytic.dK),
                                     ("dV", \Inputs.v, analytic.dV)] {
        let numeric = numericGradient(c, x, tensor)
        let error = zip(numeric, expected).map { abs($0 - $1) }.max()! / magnitude(expected)
        #expect(error < 1e-6, "\(name): finite differences differ from the analytic gradient by \(error)")
    }
}

@Test("kernel gradients equal the reference's analytic ones", arguments: tinyCases)
func kernelGradientsMatchAnalytic(_ c: Case) throws {
    let x = gridInputs(c)
    expectMatches(try runKernels(c, x), runReference(c, x), forward: forwardTolerance, backward: backwardTolerance)
}

@Test("reference and kernel dsinks equal finite differences of the loss in the sinks",
      arguments: tinyCases.filter { $0.sinks != nil })
func sinkGradientMatchesFiniteDifferences(_ c: Case) throws {
    let x = gridInputs(c)
    let numeric = c.sinks!.indices.map { h in
        var plus = c, minus = c
        plus.sinks![h] += Float(eps)
        minus.sinks![h] -= Float(eps)
        return (loss(plus, x) - loss(minus, x)) / (2 * eps)
    }
    let analytic = runReference(c, x).dSinks
    let kernels = try runKernels(c, x).dSinks
    for h in numeric.indices {
        #expect(abs(numeric[h] - analytic[h]) < 1e-6 * max(1, abs(analytic[h])), "head \(h): \(numeric[h]) against \(analytic[h])")
        #expect(abs(Double(kernels[h]) - analytic[h]) < backwardTolerance * max(1, abs(analytic[h])),
                "head \(h): kernels' \(kernels[h]) against \(analytic[h])")
    }
}
