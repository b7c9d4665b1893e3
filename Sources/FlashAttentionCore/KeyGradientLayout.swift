/// How the backward lays out dK and dV.
public enum KeyGradientLayout: Sendable {
    /// `(…, kvHeads, headDim)` and `(…, kvHeads, valueHeadDim)`: the gradients of k and v.
    case summedOverGroup
    /// `(…, heads, headDim)` and `(…, heads, valueHeadDim)`: each query head's contribution, for
    /// callers that sum a split group.
    case perQueryHead

    /// Floats of dK.
    package func elements(_ problem: AttentionProblem) -> Int { elements(problem, width: problem.headDim) }
    /// Floats of dV.
    package func valueElements(_ problem: AttentionProblem) -> Int { elements(problem, width: problem.valueHeadDim) }

    private func elements(_ problem: AttentionProblem, width: Int) -> Int {
        problem.totalKeys * (self == .perQueryHead ? problem.heads : problem.kvHeads) * width
    }
}
