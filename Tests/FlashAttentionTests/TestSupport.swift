import AttentionReference
import FlashAttention
import Testing

// Shared helpers for the kernel tests: describing a problem, making its inputs, running the
// kernels and the float64 reference into the same flat layouts, and comparing the two.

/// One attention problem in flash-attn's fixed-length layout, with everything that shapes it.
struct Case: Sendable, CustomTestStringConvertible {
    var batch = 1
    var seqlenQ: Int
    var seqlenK: Int
    var heads = 1
    var kvHeads = 1
    var headDim: Int
    /// Width of v and o; nil means headDim.
    var valueHeadDim: Int? = nil
    var causal = false
    var windowLeft = -1
    var windowRight = -1
    /// nil means flash-attn's default 1/√headDim.
    var scale: Float? = nil
    /// Multiplies q, k and v (large-logit tests).
    var inputScale: Float = 1
    var seed: UInt64 = 1
    var softcap: Float = 0
    var alibiSlopes: AlibiSlopes? = nil
    var dropout: Dropout? = nil
    var sinks: [Float]? = nil

    var softmaxScale: Float { scale ?? AttentionOptions.defaultScale(headDim: headDim) }
    var valueDim: Int { valueHeadDim ?? headDim }
    var options: AttentionOptions {
        AttentionOptions(softmaxScale: softmaxScale, causal: causal, windowLeft: windowLeft, windowRight: windowRight,
                         softcap: softcap, alibiSlopes: alibiSlopes, dropout: dropout, sinks: sinks)
    }

    func problem() throws -> AttentionProblem {
        try AttentionProblem(batch: batch, seqlenQ: seqlenQ, seqlenK: seqlenK, heads: heads, kvHeads: kvHeads,
                             headDim: headDim, valueHeadDim: valueHeadDim, options: options)
    }

    /// Standard-normal q, k, v (times inputScale) and dO, reproducible from the seed.
    func inputs() -> Inputs {
        var normals = SeededNormals(seed: seed)
        let qCount = batch * seqlenQ * heads * headDim, kCount = batch * seqlenK * kvHeads * headDim
        let vCount = batch * seqlenK * kvHeads * valueDim, oCount = batch * seqlenQ * heads * valueDim
        return Inputs(q: normals.next(qCount, scale: inputScale), k: normals.next(kCount, scale: inputScale),
                      v: normals.next(vCount, scale: inputScale), dO: normals.next(oCount))
    }

    /// The float64 reference of the same problem; its dropout mask is the one the library reports.
    func reference(_ x: Inputs) -> ReferenceAttention {
        var reference = ReferenceAttention(q: x.q, k: x.k, v: x.v, batch: batch, seqlenQ: seqlenQ, seqlenK: seqlenK,
                                           heads: heads, kvHeads: kvHeads, headDim: headDim, valueHeadDim: valueDim,
                                           scale: Double(softmaxScale),
                                           causal: causal, windowLeft: windowLeft, windowRight: windowRight)
        reference.softcap = Double(softcap)
        reference.alibiSlopes = alibiSlopes?.values.map(Double.init)
        reference.sinks = sinks?.map(Double.init)
        if dropout != nil, let problem = try? problem() {
            let masks = (0..<batch).map { b in (0..<heads).map { FlashAttention.dropoutKeepFactors(problem, batch: b, head: $0) } }
            let nk = seqlenK
            reference.keep = { b, h, i, j in Double(masks[b][h][i * nk + j]) }
        }
        return reference
    }

    var testDescription: String {
        var text = "B\(batch) Nq\(seqlenQ) Nk\(seqlenK) H\(heads)/\(kvHeads) D\(headDim)"
        if let valueHeadDim { text += " Dv\(valueHeadDim)" }
        if causal { text += " causal" }
        if windowLeft >= 0 || windowRight >= 0 { text += " window(\(windowLeft),\(windowRight))" }
        if let scale { text += " scale \(scale)" }
        if inputScale != 1 { text += " inputs×\(inputScale)" }
        if softcap > 0 { text += " softcap \(softcap)" }
        if let alibiSlopes { text += " alibi(\(alibiSlopes.values.count))" }
        if let dropout { text += " dropout \(dropout.probability)" }
        if sinks != nil { text += " sinks" }
        return text
    }
}

struct Inputs: Sendable {
    var q, k, v, dO: [Float]
}

/// Everything one forward + backward produces, in the kernels' flat layouts.
struct Outputs<Scalar: Sendable>: Sendable {
    var o, lse, dQ, dK, dV: [Scalar]
    /// dL/ds per head, for a problem with sinks.
    var dSinks: [Scalar] = []
}

/// Runs forward then backward through the pointer entry points, on output buffers pre-filled with
/// NaN so that any element the kernels forget to write shows up in the comparisons. The backward
/// takes the forward's lse residual unless `residual` is false (as from a saved lse alone).
func runKernels(_ c: Case, _ x: Inputs, threads: Int = 2, residual: Bool = true,
                configuration: KernelConfiguration = .current) throws -> Outputs<Float> {
    let problem = try c.problem()
    let q = Buffer(x.q), k = Buffer(x.k), v = Buffer(x.v), dO = Buffer(x.dO)
    let o = Buffer(nanCount: problem.outputElements), lse = Buffer(nanCount: problem.lseElements)
    let lseResidual = Buffer(nanCount: problem.lseElements)
    let dQ = Buffer(nanCount: problem.queryElements)
    let dK = Buffer(nanCount: problem.keyElements), dV = Buffer(nanCount: problem.valueElements)
    FlashAttention.forward(problem, q: q.input, k: k.input, v: v.input, o: o.output, lse: lse.output,
                           lseResidual: lseResidual.output, threads: threads, configuration: configuration)
    FlashAttention.backward(problem, q: q.input, k: k.input, v: v.input, o: o.input, lse: lse.input,
                            lseResidual: residual ? lseResidual.input : nil,
                            dO: dO.input, dQ: dQ.output, dK: dK.output, dV: dV.output, threads: threads,
                            configuration: configuration)
    let dSinks = SinkGradient.compute(problem, o: o.array, dO: x.dO, lse: lse.array,
                                      lseResidual: residual ? lseResidual.array : nil)
    return Outputs(o: o.array, lse: lse.array, dQ: dQ.array, dK: dK.array, dV: dV.array, dSinks: dSinks)
}

/// The reference's forward and backward in the kernels' layouts: dQ like q, o like dO, lse as
/// (batch, heads, seqlenQ), and dK, dV like k and v with each query head's contribution added to
/// the kv head it reads (query head h reads kv head h / (heads / kvHeads)).
func runReference(_ c: Case, _ x: Inputs) -> Outputs<Double> {
    let reference = c.reference(x)
    let (d, dv, group) = (c.headDim, c.valueDim, c.heads / c.kvHeads)
    var o = [Double](repeating: 0, count: x.dO.count), dQ = [Double](repeating: 0, count: x.q.count)
    var lse = [Double](repeating: 0, count: c.batch * c.heads * c.seqlenQ)
    var dK = [Double](repeating: 0, count: x.k.count), dV = [Double](repeating: 0, count: x.v.count)
    for b in 0..<c.batch {
        for h in 0..<c.heads {
            for i in 0..<c.seqlenQ {
                let row = reference.forwardRow(batch: b, head: h, row: i)
                let base = ((b * c.seqlenQ + i) * c.heads + h) * dv
                for e in 0..<dv { o[base + e] = row.o[e] }
                lse[(b * c.heads + h) * c.seqlenQ + i] = row.lse
            }
            let grads = reference.backwardHead(batch: b, head: h, dO: x.dO)
            for i in 0..<c.seqlenQ {
                let base = ((b * c.seqlenQ + i) * c.heads + h) * d
                for e in 0..<d { dQ[base + e] = grads.dQ[i * d + e] }
            }
            for j in 0..<c.seqlenK {
                let row = (b * c.seqlenK + j) * c.kvHeads + h / group
                for e in 0..<d { dK[row * d + e] += grads.dK[j * d + e] }
                for e in 0..<dv { dV[row * dv + e] += grads.dV[j * dv + e] }
            }
        }
    }
    let dSinks = c.sinks == nil ? [] : (0..<c.heads).map { reference.sinkGradient(head: $0, dO: x.dO) }
    return Outputs(o: o, lse: lse, dQ: dQ, dK: dK, dV: dV, dSinks: dSinks)
}

/// Largest |actual − expected|; equal infinities count as 0, and a NaN or a mismatched infinity
/// as +∞, so any of them fails a tolerance.
func maxAbsDifference(_ actual: [Float], _ expected: [Double]) -> Double {
    precondition(actual.count == expected.count)
    var worst = 0.0
    for (a, e) in zip(actual, expected) {
        let a = Double(a)
        if a == e { continue }
        let diff = abs(a - e)
        worst = max(worst, diff.isNaN ? .infinity : diff)
    }
    return worst
}

/// Largest finite magnitude, at least 1: the scale an absolute error is measured against.
func magnitude(_ values: [Double]) -> Double {
    values.reduce(1) { $1.isFinite ? max($0, abs($1)) : $0 }
}

/// Expects max |actual − expected| ≤ tolerance · max(1, max |expected|).
func expectClose(_ actual: [Float], _ expected: [Double], tolerance: Double, _ name: String,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    let error = maxAbsDifference(actual, expected) / magnitude(expected)
    #expect(error <= tolerance, "\(name): relative max error \(error) exceeds \(tolerance)",
            sourceLocation: sourceLocation)
}

/// Compares every output of the kernels with the reference under per-tensor tolerances.
func expectMatches(_ actual: Outputs<Float>, _ expected: Outputs<Double>, forward: Double, backward: Double,
                   sourceLocation: SourceLocation = #_sourceLocation) {
    expectClose(actual.o, expected.o, tolerance: forward, "o", sourceLocation: sourceLocation)
    expectClose(actual.lse, expected.lse, tolerance: forward, "lse", sourceLocation: sourceLocation)
    expectClose(actual.dQ, expected.dQ, tolerance: backward, "dQ", sourceLocation: sourceLocation)
    expectClose(actual.dK, expected.dK, tolerance: backward, "dK", sourceLocation: sourceLocation)
    expectClose(actual.dV, expected.dV, tolerance: backward, "dV", sourceLocation: sourceLocation)
    expectClose(actual.dSinks, expected.dSinks, tolerance: backward, "dSinks", sourceLocation: sourceLocation)
}

/// Float storage for the buffer entry points (never a nil base address, even when empty).
final class Buffer {
    let count: Int
    let pointer: UnsafeMutablePointer<Float>

    init(_ values: [Float]) {
        count = values.count
        pointer = .allocate(capacity: max(1, count))
        pointer.initialize(repeating: .nan, count: max(1, count))
        if count > 0 { values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: count) } }
    }

    convenience init(nanCount count: Int) { self.init([Float](repeating: .nan, count: count)) }

    var input: UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: pointer, count: count) }
    var output: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }
    var array: [Float] { Array(input) }

    deinit { pointer.deallocate() }
}
