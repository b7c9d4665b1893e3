/// The element counts of a call's buffers against the counts its problem needs.
///
/// The buffer forms of `FlashAttention.forward` and `backward` check them on every call, release
/// builds included: those are built `-Ounchecked`, which removes `precondition`, and a short
/// buffer would be read or written past its end without a word.
public struct BufferCounts: Sendable, Equatable {
    /// Each buffer's name, its element count, and the count the problem needs, in argument order.
    public let buffers: [Entry]

    public struct Entry: Sendable, Equatable {
        public let name: String
        public let count: Int
        public let needed: Int
    }

    /// The buffers of a forward (lse's residual, when given, is shaped like lse).
    public static func forward(_ problem: AttentionProblem, q: Int, k: Int, v: Int, o: Int, lse: Int,
                               lseResidual: Int? = nil) -> BufferCounts {
        BufferCounts(buffers: [Entry(name: "q", count: q, needed: problem.queryElements),
                               Entry(name: "k", count: k, needed: problem.keyElements),
                               Entry(name: "v", count: v, needed: problem.valueElements),
                               Entry(name: "o", count: o, needed: problem.outputElements),
                               Entry(name: "lse", count: lse, needed: problem.lseElements)]
                              + (lseResidual.map { [Entry(name: "lseResidual", count: $0, needed: problem.lseElements)] } ?? []))
    }

    /// The buffers of a backward, dK and dV laid out as `keyGradients` says.
    public static func backward(_ problem: AttentionProblem, q: Int, k: Int, v: Int, o: Int, lse: Int,
                                lseResidual: Int? = nil, dO: Int, dQ: Int, dK: Int, dV: Int,
                                keyGradients: KeyGradientLayout) -> BufferCounts {
        let inputs = forward(problem, q: q, k: k, v: v, o: o, lse: lse, lseResidual: lseResidual).buffers
        return BufferCounts(buffers: inputs + [Entry(name: "dO", count: dO, needed: problem.outputElements),
                                               Entry(name: "dQ", count: dQ, needed: problem.queryElements),
                                               Entry(name: "dK", count: dK, needed: keyGradients.elements(problem)),
                                               Entry(name: "dV", count: dV, needed: keyGradients.valueElements(problem))])
    }

    /// The first buffer of the wrong size, in words; nil when every count is right.
    public var mismatch: String? {
        buffers.first { $0.count != $0.needed }.map { "\($0.name): \($0.count) elements, but the problem needs \($0.needed)" }
    }

    /// Stops the process on a mismatch, naming the call: an explicit `fatalError`, which
    /// `-Ounchecked` keeps.
    func require(_ call: String) {
        if let mismatch { fatalError("FlashAttention.\(call): \(mismatch)") }
    }
}
