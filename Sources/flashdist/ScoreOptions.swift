import ArgumentParser
import FlashAttention
import TensorIO
import TensorSlices

/// flash-attn's score options beyond the masks, and the variable-length layout: the options of
/// the commands that read files (bench has none of them, since it has no files).
struct ScoreOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Softcap C: scores become C·tanh(S/C); 0 = off.")
    var softcap: Float = 0
    @Option(help: "ALiBi slopes, float32 .npy shaped (heads) or (batch, heads): bias −slope·|i + Nk − Nq − j|.")
    var alibiSlopes: String?
    @Option(help: "Attention sinks, float32 .npy shaped (heads): one logit per head in every row's softmax denominator, with no value; the backward also writes dsinks.")
    var sinks: String?
    @Option(parsing: .unconditional, help: "Dropout probability p in [0, 1) on the attention probabilities; kept ones scale by 1/(1−p).")
    var dropout: Double = 0
    @Option(help: "Seed of the dropout mask (Philox4x32-10 keyed by seed, batch, head, row, column); default 0.")
    var seed: UInt64?
    @Flag(help: "Also write the dropout mask (DIR/dropout_mask.npy, or entry dropout_mask), (batch, heads, seqlen_q, seqlen_k) keep factors (0 or 1/(1−p)); fixed-length batches of at most 2^26 factors.")
    var saveDropoutMask = false
    @Option(help: "Query offsets of a variable-length batch, int32 .npy (batch + 1): q, o, do are then (total_q, heads, head_dim), lse (heads, total_q).")
    var cuSeqlensQ: String?
    @Option(help: "Key offsets of a variable-length batch, int32 .npy (batch + 1): k, v are then (total_k, kv_heads, head_dim).")
    var cuSeqlensK: String?

    func validate() throws {
        // The values of --softcap and --dropout are the library's to check (AttentionOptions),
        // worded by ProblemSources; what is left here is how the options go together.
        if seed != nil && dropout == 0 { throw ValidationError("--seed: has no effect without --dropout P above 0") }
        guard (cuSeqlensQ == nil) == (cuSeqlensK == nil) else {
            throw ValidationError("--cu-seqlens-q and --cu-seqlens-k go together: give both or neither")
        }
        if saveDropoutMask && dropout == 0 { throw ValidationError("--save-dropout-mask: needs --dropout P above 0") }
        if saveDropoutMask && cuSeqlensQ != nil {
            throw ValidationError("--save-dropout-mask: only for fixed-length batches (the mask is (batch, heads, seqlen_q, seqlen_k))")
        }
    }

    /// The offsets of a variable-length batch, read and checked against nothing yet (the layout
    /// checks them against q and k); nil for a fixed-length batch.
    func readOffsets() throws -> (q: [Int], k: [Int])? {
        guard let cuSeqlensQ, let cuSeqlensK else { return nil }
        return (try Self.readOffsets(cuSeqlensQ), try Self.readOffsets(cuSeqlensK))
    }

    private static func readOffsets(_ path: String) throws -> [Int] {
        let (shape, offsets) = try Npy.readIntegers(path)
        guard shape.count == 1, offsets.count >= 2 else {
            throw TensorIOError(path, "shape \(shapeText(shape)) is not (batch + 1,) offsets")
        }
        return offsets
    }

    /// The slopes file read and its shape checked against the problem's batch and heads.
    func readSlopes(batch: Int, heads: Int) throws -> AlibiSlopes? {
        guard let alibiSlopes else { return nil }
        let (shape, values) = try Npy.readFloats(alibiSlopes)
        guard shape == [heads] || shape == [batch, heads] else {
            throw TensorIOError(alibiSlopes, "shape \(shapeText(shape)) is neither (heads,) = \(shapeText([heads])) nor (batch, heads) = \(shapeText([batch, heads]))")
        }
        return AlibiSlopes(values: values, heads: heads)
    }

    /// The sinks file read and checked against the problem's heads.
    func readSinks(heads: Int) throws -> [Float]? {
        guard let sinks else { return nil }
        let (shape, values) = try Npy.readFloats(sinks)
        guard shape == [heads] else { throw TensorIOError(sinks, "shape \(shapeText(shape)) is not (heads,) = \(shapeText([heads]))") }
        guard values.allSatisfy(\.isFinite) else { throw TensorIOError(sinks, "sinks must be finite") }
        return values
    }

    /// The mask options with these added.
    func attentionOptions(_ mask: MaskOptions, headDim: Int, slopes: AlibiSlopes?, sinks: [Float]?) -> AttentionOptions {
        var options = mask.attentionOptions(headDim: headDim)
        options.softcap = softcap
        options.alibiSlopes = slopes
        options.sinks = sinks
        options.dropout = dropout != 0 ? Dropout(probability: Float(dropout), seed: seed ?? 0) : nil
        return options
    }
}
