/// How scores are formed and masked: `S = Q·Kᵀ·softmaxScale`, optionally softcapped
/// (`c·tanh(S/c)`) and biased by ALiBi (`−slope·|i + Nk − Nq − j|`), then the causal and
/// sliding-window masks, aligned bottom-right as in flash-attn; optionally dropout on the
/// probabilities; optionally one sink logit per query head that joins every row's softmax
/// denominator and carries no value (gpt-oss, StreamingLLM).
public struct AttentionOptions: Sendable, Equatable {
    public var softmaxScale: Float
    public var causal: Bool
    /// Keys a query may see to its left and right of the diagonal; -1 is unbounded.
    public var windowLeft: Int
    public var windowRight: Int
    /// Softcap c: scores become c·tanh(S/c); 0 is off.
    public var softcap: Float
    public var alibiSlopes: AlibiSlopes?
    public var dropout: Dropout?
    /// Attention sinks: one logit s_h per query head of the problem (`heads` values). Row i of
    /// head h then has lse = log(Σ_j e^(S_ij) + e^(s_h)) and O = Σ_j e^(S_ij − lse)·V_j: the sink
    /// takes probability but adds no value, and a row that sees no key has O = 0, lse = s_h.
    public var sinks: [Float]?

    public init(softmaxScale: Float, causal: Bool = false, windowLeft: Int = -1, windowRight: Int = -1,
                softcap: Float = 0, alibiSlopes: AlibiSlopes? = nil, dropout: Dropout? = nil, sinks: [Float]? = nil) {
        self.softmaxScale = softmaxScale
        self.causal = causal
        self.windowLeft = windowLeft
        self.windowRight = windowRight
        self.softcap = softcap
        self.alibiSlopes = alibiSlopes
        self.dropout = dropout
        self.sinks = sinks
    }

    /// flash-attn's default scale, 1/√headDim.
    public static func defaultScale(headDim: Int) -> Float { 1 / Float(headDim).squareRoot() }

    package func validate() throws(AttentionError) {
        guard softmaxScale.isFinite else { throw .softmaxScaleNotFinite(softmaxScale) }
        guard windowLeft >= -1, windowRight >= -1 else { throw .windowOutOfRange(left: windowLeft, right: windowRight) }
        guard softcap.isFinite, softcap >= 0 else { throw .softcapOutOfRange(softcap) }
        if let dropout, !(0..<1).contains(dropout.probability) { throw .dropoutOutOfRange(dropout.probability) }
        if let alibiSlopes, !alibiSlopes.values.allSatisfy(\.isFinite) { throw .alibiSlopesNotFinite }
        if let sinks, !sinks.allSatisfy(\.isFinite) { throw .sinksNotFinite }
    }

    /// The options of query heads `heads` of this problem alone: their sinks (everything else is
    /// keyed by the whole problem's heads through `AttentionProblem.firstHead`).
    package func restricted(toHeads heads: Range<Int>) -> AttentionOptions {
        var options = self
        options.sinks = sinks.map { Array($0[heads]) }
        return options
    }
}

/// ALiBi slopes of every query head of the whole problem, shared by all batch entries (`heads`
/// values) or one row per batch entry (`batch × heads`, batch-major), as flash-attn takes them.
public struct AlibiSlopes: Sendable, Equatable {
    public let values: [Float]
    /// Query heads of the whole problem (a rank may compute only some of them).
    public let heads: Int

    public init(values: [Float], heads: Int) {
        self.values = values
        self.heads = heads
    }

    package func slope(batch b: Int, head h: Int) -> Float { values.count == heads ? values[h] : values[b * heads + h] }
}

/// Dropout on the attention probabilities: each is kept with probability 1 − p and scaled by
/// 1/(1 − p). Which are kept depends only on (seed, batch, head, row, column), so the backward
/// regenerates the mask instead of storing it, and any thread or rank count gives the same one.
public struct Dropout: Sendable, Equatable {
    public let probability: Float
    public let seed: UInt64

    public init(probability: Float, seed: UInt64) {
        self.probability = probability
        self.seed = seed
    }
}
