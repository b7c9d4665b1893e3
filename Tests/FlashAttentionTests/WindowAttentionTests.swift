import FlashAttention
import Testing

// The ring partition's promise at the kernel level, in one process: rows cut into uneven
// windows, keys handed over a block at a time in key order, each key block's per-head dK/dV sums
// passed from window to window in row order and their heads added at the end give exactly the
// bits of the whole-problem kernels, on every instruction set and for tiles other than the
// caches' (the key blocks then cover forward blocks of 32 and backward blocks of 128 keys at
// once). Windows cut row blocks (130, 325 are not multiples of 64), and every case has more keys
// than the widest backward block (256), so the keys come in several blocks.

private let windowCases: [Case] = [
    Case(seqlenQ: 520, seqlenK: 520, heads: 4, kvHeads: 2, headDim: 40, causal: true),
    Case(seqlenQ: 130, seqlenK: 260, heads: 3, kvHeads: 1, headDim: 33, windowLeft: 16, windowRight: 4,
         softcap: 5, dropout: Dropout(probability: 0.2, seed: 9)),
    Case(seqlenQ: 600, seqlenK: 300, heads: 2, kvHeads: 2, headDim: 64, causal: true),
    // v with a head dim of its own, narrower and wider than q's and k's.
    Case(seqlenQ: 520, seqlenK: 520, heads: 4, kvHeads: 2, headDim: 48, valueHeadDim: 20, causal: true),
    Case(seqlenQ: 130, seqlenK: 260, heads: 3, kvHeads: 1, headDim: 16, valueHeadDim: 40, windowLeft: 16, windowRight: 4),
]

private let windowTilings: [Tiling] = [
    .fitted(to: CPUInfo.host.caches),
    Tiling(keyColumns: 32, backwardRows: 48, backwardKeys: 128, forwardRows: 80, caches: CPUInfo.host.caches),
]

@Test("windows of rows with keys a block at a time give the bits of the whole problem",
      arguments: windowCases, windowTilings)
func windowsGiveTheBitsOfTheWholeProblem(_ c: Case, _ tiling: Tiling) throws {
    for isa in InstructionSet.supported {
        try windowsGiveTheBits(c, KernelConfiguration(instructionSet: isa, tiling: tiling))
    }
}

private func windowsGiveTheBits(_ c: Case, _ configuration: KernelConfiguration) throws {
    let problem = try c.problem()
    let x = c.inputs()
    let (o, lse) = FlashAttention.forward(problem, q: x.q, k: x.k, v: x.v, threads: 2, configuration: configuration)
    let whole = FlashAttention.backward(problem, q: x.q, k: x.k, v: x.v, o: o, lse: lse, dO: x.dO, threads: 2,
                                        configuration: configuration)
    let (h, hkv, d, dv) = (c.heads, c.kvHeads, c.headDim, c.valueDim)
    let cuts = [0, c.seqlenQ / 4, c.seqlenQ * 5 / 8, c.seqlenQ]
    let windows = zip(cuts, cuts.dropFirst()).map { $0..<$1 }
    func rows(_ values: [Float], _ window: Range<Int>, width: Int) -> [Float] {
        Array(values[window.lowerBound * h * width..<window.upperBound * h * width])
    }
    func lseRows(_ values: [Float], _ window: Range<Int>) -> [Float] {
        (0..<h).flatMap { head in values[head * c.seqlenQ + window.lowerBound..<head * c.seqlenQ + window.upperBound] }
    }
    let blocks = WindowAttention.keyBlocks(problem, tiling: configuration.tiling)
    #expect(blocks.count > 1)

    let forwards = windows.map { WindowForward(problem, rows: $0, q: rows(x.q, $0, width: d), threads: 2, configuration: configuration) }
    func keyPart(_ block: Range<Int>, width: Int) -> Range<Int> { block.lowerBound * hkv * width..<block.upperBound * hkv * width }
    for block in blocks {
        let (k, v) = (Array(x.k[keyPart(block, width: d)]), Array(x.v[keyPart(block, width: dv)]))
        for forward in forwards { forward.visit(keys: block, k: k, v: v) }
    }
    for (window, forward) in zip(windows, forwards) {
        let result = forward.finish()
        #expect(result.o.map(\.bitPattern) == rows(o, window, width: dv).map(\.bitPattern), "o of rows \(window)")
        #expect(result.lse.map(\.bitPattern) == lseRows(lse, window).map(\.bitPattern), "lse of rows \(window)")
    }

    let backwards = windows.map {
        WindowBackward(problem, rows: $0, q: rows(x.q, $0, width: d), o: rows(o, $0, width: dv), lse: lseRows(lse, $0),
                       dO: rows(x.dO, $0, width: dv), threads: 2, configuration: configuration)
    }
    for block in blocks {
        let (keyPart, valuePart) = (keyPart(block, width: d), keyPart(block, width: dv))
        let (k, v) = (Array(x.k[keyPart]), Array(x.v[valuePart]))
        var sums = [Float](repeating: 0, count: WindowAttention.partialFloats(problem, keys: block))
        for backward in backwards { backward.accumulate(keys: block, k: k, v: v, partials: &sums) }
        let gradients = WindowAttention.keyGradients(problem, keys: block, partials: sums)
        #expect(gradients.dK.map(\.bitPattern) == whole.dK[keyPart].map(\.bitPattern), "dK of keys \(block)")
        #expect(gradients.dV.map(\.bitPattern) == whole.dV[valuePart].map(\.bitPattern), "dV of keys \(block)")
    }
    for (window, backward) in zip(windows, backwards) {
        #expect(backward.finish().map(\.bitPattern) == rows(whole.dQ, window, width: d).map(\.bitPattern), "dQ of rows \(window)")
    }
}
