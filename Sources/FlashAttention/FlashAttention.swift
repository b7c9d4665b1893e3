@_exported import FlashAttentionCore
import FlashKernelsAVX2
import FlashKernelsAVX512

/// Exact attention `softmax(Q·Kᵀ·scale + mask)·V` and its gradients, tiled so that nothing of
/// size seqlen_q × seqlen_k is ever held: memory grows linearly with sequence length.
///
/// The buffer entry points read and write the flat layouts that `AttentionProblem` describes;
/// callers own the memory, and each buffer's count is checked against the problem on every call
/// (`BufferCounts`). `threads` workers share the tiles; results are bitwise the same for any
/// thread count.
public enum FlashAttention {
    /// O and the per-row logsumexp of the scores, nothing else; with `lseResidual` (laid out like
    /// lse) also lse's float32 rounding error, lse₆₄ − lse, which the backward takes to recompute
    /// P as exactly as the forward formed it when the logits are large (|S| ~ 10³).
    public static func forward(_ problem: AttentionProblem,
                               q: UnsafeBufferPointer<Float>, k: UnsafeBufferPointer<Float>, v: UnsafeBufferPointer<Float>,
                               o: UnsafeMutableBufferPointer<Float>, lse: UnsafeMutableBufferPointer<Float>,
                               lseResidual: UnsafeMutableBufferPointer<Float>? = nil,
                               threads: Int, configuration: KernelConfiguration = .current) {
        BufferCounts.forward(problem, q: q.count, k: k.count, v: v.count, o: o.count, lse: lse.count,
                             lseResidual: lseResidual?.count).require("forward")
        switch configuration.instructionSet {
        case .avx2:
            FlashKernelsAVX2.Kernels.forward(problem, q: q.start, k: k.start, v: v.start, o: o.start, lse: lse.start,
                                             lseResidual: lseResidual?.baseAddress, threads: threads, tiling: configuration.tiling)
        case .avx512:
            FlashKernelsAVX512.Kernels.forward(problem, q: q.start, k: k.start, v: v.start, o: o.start, lse: lse.start,
                                               lseResidual: lseResidual?.baseAddress, threads: threads, tiling: configuration.tiling)
        }
    }

    /// dQ, dK, dV from the inputs, the forward's O and lse (with its residual if known), and dO;
    /// P is recomputed, not stored. With sinks, `sinkGradient` gives their gradient.
    /// With `.perQueryHead`, dK and dV are `(…, heads, headDim)`: each query head's contribution,
    /// which summed in head order over a group gives exactly the `.summedOverGroup` result.
    public static func backward(_ problem: AttentionProblem,
                                q: UnsafeBufferPointer<Float>, k: UnsafeBufferPointer<Float>, v: UnsafeBufferPointer<Float>,
                                o: UnsafeBufferPointer<Float>, lse: UnsafeBufferPointer<Float>,
                                lseResidual: UnsafeBufferPointer<Float>? = nil, dO: UnsafeBufferPointer<Float>,
                                dQ: UnsafeMutableBufferPointer<Float>, dK: UnsafeMutableBufferPointer<Float>,
                                dV: UnsafeMutableBufferPointer<Float>, keyGradients: KeyGradientLayout = .summedOverGroup,
                                threads: Int, configuration: KernelConfiguration = .current) {
        BufferCounts.backward(problem, q: q.count, k: k.count, v: v.count, o: o.count, lse: lse.count,
                              lseResidual: lseResidual?.count, dO: dO.count,
                              dQ: dQ.count, dK: dK.count, dV: dV.count, keyGradients: keyGradients).require("backward")
        switch configuration.instructionSet {
        case .avx2:
            FlashKernelsAVX2.Kernels.backward(problem, q: q.start, k: k.start, v: v.start, o: o.start, lse: lse.start,
                                              lseResidual: lseResidual?.baseAddress, dO: dO.start,
                                              dQ: dQ.start, dK: dK.start, dV: dV.start, keyGradients: keyGradients,
                                              threads: threads, tiling: configuration.tiling)
        case .avx512:
            FlashKernelsAVX512.Kernels.backward(problem, q: q.start, k: k.start, v: v.start, o: o.start, lse: lse.start,
                                                lseResidual: lseResidual?.baseAddress, dO: dO.start,
                                                dQ: dQ.start, dK: dK.start, dV: dV.start, keyGradients: keyGradients,
                                                threads: threads, tiling: configuration.tiling)
        }
    }

    /// The fp32 FMA throughput of `threads` threads with the kernels of `instructionSet`, in
    /// GFLOP/s: the peak the benchmarks measure their share of.
    public static func fmaPeakGFLOPS(threads: Int, instructionSet: InstructionSet = KernelConfiguration.current.instructionSet) -> Double {
        switch instructionSet {
        case .avx2: FlashKernelsAVX2.Kernels.fmaPeakGFLOPS(threads: threads)
        case .avx512: FlashKernelsAVX512.Kernels.fmaPeakGFLOPS(threads: threads)
        }
    }
}

extension FlashAttention {
    /// The dropout factors the kernels apply to head `head` of batch entry `batch`: 0 where a
    /// probability is dropped, 1/(1 − p) where kept, `(seqlen_q, seqlen_k)` row-major. Empty when
    /// the problem has no dropout. For inspecting the mask of small problems; the kernels
    /// regenerate it block by block and never hold it.
    public static func dropoutKeepFactors(_ problem: AttentionProblem, batch: Int, head: Int) -> [Float] {
        guard problem.options.dropout != nil else { return [] }
        let (nq, nk) = (problem.seqlenQ(batch), problem.seqlenK(batch))
        let stride = roundUpToLanes(nk)
        var padded = [Float](repeating: 0, count: nq * stride)
        if nq > 0 && nk > 0 {
            padded.withUnsafeMutableBufferPointer {
                FlashKernelsAVX2.Kernels.keepFactors(problem, batch: batch, head: head, into: $0.baseAddress!, rowStride: stride)
            }
        }
        return (0..<nq).flatMap { padded[$0 * stride..<$0 * stride + nk] }
    }
}

extension FlashAttention {
    /// The forward on arrays, writing O (shaped like q, rows valueHeadDim wide) and lse into
    /// existing arrays, and lse's residual when `lseResidual` is given (an array shaped like lse).
    public static func forward(_ problem: AttentionProblem, q: [Float], k: [Float], v: [Float],
                               o: inout [Float], lse: inout [Float], lseResidual: UnsafeMutableBufferPointer<Float>? = nil,
                               threads: Int, configuration: KernelConfiguration = .current) {
        q.withUnsafeBufferPointer { q in
            k.withUnsafeBufferPointer { k in
                v.withUnsafeBufferPointer { v in
                    o.withUnsafeMutableBufferPointer { o in
                        lse.withUnsafeMutableBufferPointer { lse in
                            forward(problem, q: q, k: k, v: v, o: o, lse: lse, lseResidual: lseResidual, threads: threads,
                                    configuration: configuration)
                        }
                    }
                }
            }
        }
    }

    /// The forward on arrays: returns O (shaped like q, rows valueHeadDim wide) and lse.
    public static func forward(_ problem: AttentionProblem, q: [Float], k: [Float], v: [Float],
                               threads: Int, configuration: KernelConfiguration = .current) -> (o: [Float], lse: [Float]) {
        var o = [Float](repeating: 0, count: problem.outputElements)
        var lse = [Float](repeating: 0, count: problem.lseElements)
        forward(problem, q: q, k: k, v: v, o: &o, lse: &lse, threads: threads, configuration: configuration)
        return (o, lse)
    }

    /// The forward on arrays: returns O (shaped like q, rows valueHeadDim wide), lse, and lse's
    /// residual (shaped like lse), which `backward` takes to keep its digits at large logits.
    public static func forwardWithResidual(_ problem: AttentionProblem, q: [Float], k: [Float], v: [Float],
                                           threads: Int, configuration: KernelConfiguration = .current)
        -> (o: [Float], lse: [Float], lseResidual: [Float]) {
        var o = [Float](repeating: 0, count: problem.outputElements)
        var lse = [Float](repeating: 0, count: problem.lseElements), residual = lse
        residual.withUnsafeMutableBufferPointer { residual in
            forward(problem, q: q, k: k, v: v, o: &o, lse: &lse, lseResidual: residual, threads: threads, configuration: configuration)
        }
        return (o, lse, residual)
    }

    /// The backward on arrays, writing dQ (shaped like q) and dK, dV (like k and v, or with
    /// `.perQueryHead` one slot per query head) into existing arrays. `lseResidual` is the
    /// forward's (nil: unknown, as zeros).
    public static func backward(_ problem: AttentionProblem, q: [Float], k: [Float], v: [Float],
                                o: [Float], lse: [Float], lseResidual: [Float]? = nil, dO: [Float],
                                dQ: inout [Float], dK: inout [Float], dV: inout [Float],
                                keyGradients: KeyGradientLayout = .summedOverGroup, threads: Int, configuration: KernelConfiguration = .current) {
        q.withUnsafeBufferPointer { q in
            k.withUnsafeBufferPointer { k in
                v.withUnsafeBufferPointer { v in
                    o.withUnsafeBufferPointer { o in
                        lse.withUnsafeBufferPointer { lse in
                            (lseResidual ?? []).withUnsafeBufferPointer { residual in
                                dO.withUnsafeBufferPointer { dO in
                                    dQ.withUnsafeMutableBufferPointer { dQ in
                                        dK.withUnsafeMutableBufferPointer { dK in
                                            dV.withUnsafeMutableBufferPointer { dV in
                                                backward(problem, q: q, k: k, v: v, o: o, lse: lse,
                                                         lseResidual: lseResidual == nil ? nil : residual, dO: dO,
                                                         dQ: dQ, dK: dK, dV: dV, keyGradients: keyGradients, threads: threads,
                                                         configuration: configuration)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The backward on arrays: returns dQ shaped like q and dK, dV as `keyGradients` says.
    public static func backward(_ problem: AttentionProblem, q: [Float], k: [Float], v: [Float],
                                o: [Float], lse: [Float], lseResidual: [Float]? = nil, dO: [Float],
                                keyGradients: KeyGradientLayout = .summedOverGroup,
                                threads: Int, configuration: KernelConfiguration = .current) -> (dQ: [Float], dK: [Float], dV: [Float]) {
        var dQ = [Float](repeating: 0, count: problem.queryElements)
        var dK = [Float](repeating: 0, count: keyGradients.elements(problem))
        var dV = [Float](repeating: 0, count: keyGradients.valueElements(problem))
        backward(problem, q: q, k: k, v: v, o: o, lse: lse, lseResidual: lseResidual, dO: dO, dQ: &dQ, dK: &dK, dV: &dV,
                 keyGradients: keyGradients, threads: threads, configuration: configuration)
        return (dQ, dK, dV)
    }
}
