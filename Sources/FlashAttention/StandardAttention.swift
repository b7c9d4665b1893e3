import FlashKernelsAVX2
import FlashKernelsAVX512

extension StandardAttention {
    /// O, lse and the stored P (`probabilityElements` floats), on the kernels of `configuration`.
    public static func forward(_ problem: AttentionProblem, q: [Float], k: [Float], v: [Float],
                               o: inout [Float], lse: inout [Float], p: inout [Float], threads: Int,
                               configuration: KernelConfiguration = .current) {
        switch configuration.instructionSet {
        case .avx2: FlashKernelsAVX2.StandardKernels.forward(problem, q: q, k: k, v: v, o: &o, lse: &lse, p: &p, threads: threads)
        case .avx512: FlashKernelsAVX512.StandardKernels.forward(problem, q: q, k: k, v: v, o: &o, lse: &lse, p: &p, threads: threads)
        }
    }

    /// dQ, dK, dV (summed over each group) from the inputs, O, dO and the stored P, on the kernels
    /// of `configuration`.
    public static func backward(_ problem: AttentionProblem, q: [Float], k: [Float], v: [Float], o: [Float],
                                dO: [Float], p: [Float], dQ: inout [Float], dK: inout [Float], dV: inout [Float],
                                threads: Int, configuration: KernelConfiguration = .current) {
        switch configuration.instructionSet {
        case .avx2:
            FlashKernelsAVX2.StandardKernels.backward(problem, q: q, k: k, v: v, o: o, dO: dO, p: p,
                                                      dQ: &dQ, dK: &dK, dV: &dV, threads: threads)
        case .avx512:
            FlashKernelsAVX512.StandardKernels.backward(problem, q: q, k: k, v: v, o: o, dO: dO, p: p,
                                                        dQ: &dQ, dK: &dK, dV: &dV, threads: threads)
        }
    }
}
