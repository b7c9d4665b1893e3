/// How scores are formed and masked: `S = Q·Kᵀ·softmaxScale`, then the causal and sliding-window
/// masks, aligned bottom-right as in flash-attn.
public struct AttentionOptions: Sendable, Equatable {
    public var softmaxScale: Float
    public var causal: Bool
    /// Keys a query may see to its left and right of the diagonal; -1 is unbounded.
    public var windowLeft: Int
    public var windowRight: Int

    public init(softmaxScale: Float, causal: Bool = false, windowLeft: Int = -1, windowRight: Int = -1) {
        self.softmaxScale = softmaxScale
        self.causal = causal
        self.windowLeft = windowLeft
        self.windowRight = windowRight
    }

    /// flash-attn's default scale, 1/√headDim.
    public static func defaultScale(headDim: Int) -> Float { 1 / Float(headDim).squareRoot() }

    func validate() throws(AttentionError) {
        guard softmaxScale.isFinite else { throw .invalid("softmax scale must be finite, got \(softmaxScale)") }
        guard windowLeft >= -1, windowRight >= -1 else {
            throw .invalid("window sizes must be -1 (unbounded) or non-negative, got (\(windowLeft), \(windowRight))")
        }
    }
}
