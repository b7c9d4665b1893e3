/// How the backward lays out dK and dV.
public enum KeyGradientLayout: Sendable {
    /// `(…, kvHeads, headDim)`: the gradients of k and v.
    case summedOverGroup
    /// `(…, heads, headDim)`: each query head's contribution, for callers that sum a split group.
    case perQueryHead

    package func elements(_ problem: AttentionProblem) -> Int {
        problem.totalKeys * (self == .perQueryHead ? problem.heads : problem.kvHeads) * problem.headDim
    }
}
