import ArgumentParser
import FlashAttention
import TensorIO

/// Where the command line took each quantity of a problem from, a file or an option, so that the
/// library's errors (each rule checked there, once) reach the user naming that file or option.
/// The one place where the command line words an `AttentionError`.
struct ProblemSources {
    enum Source {
        case file(String)
        case option(String)
    }

    var batch: Source, heads: Source, kvHeads: Source, headDim: Source, valueHeadDim: Source
    var cuSeqlensQ: String? = nil, cuSeqlensK: String? = nil, alibiSlopes: String? = nil, sinks: String? = nil
    /// `--dropout` as typed: a probability just below 1 can round to 1 in float32.
    var dropout: Double = 0

    /// The files of `flashdist attention` and `backward`: heads and head dim from q, kv heads from k.
    init(q: String, k: String, v: String, scores: ScoreOptions) {
        (batch, heads, kvHeads, headDim, valueHeadDim) = (.file(q), .file(q), .file(k), .file(q), .file(v))
        (cuSeqlensQ, cuSeqlensK, alibiSlopes, sinks, dropout) =
            (scores.cuSeqlensQ, scores.cuSeqlensK, scores.alibiSlopes, scores.sinks, scores.dropout)
    }

    /// Sizes given as options (`flashdist bench`).
    init(batch: String, heads: String, kvHeads: String, headDim: String, valueHeadDim: String) {
        (self.batch, self.heads, self.kvHeads, self.headDim, self.valueHeadDim) =
            (.option(batch), .option(heads), .option(kvHeads), .option(headDim), .option(valueHeadDim))
    }

    /// `error` worded for the user: a `TensorIOError` naming a file or a `ValidationError` naming
    /// an option.
    func worded(_ error: AttentionError) -> Error {
        switch error {
        case .batchBelowOne(let batch):
            return say(self.batch, file: "batch must be at least 1, got \(batch)", option: "must be at least 1, got \(batch)")
        case .headsBelowOne(let heads, _) where heads < 1:
            return say(self.heads, file: "has no heads", option: "must be at least 1, got \(heads)")
        case .headsBelowOne(_, let kvHeads):
            return say(self.kvHeads, file: "has no kv heads", option: "must be at least 1, got \(kvHeads)")
        case .headsNotMultipleOfKVHeads(let heads, let kvHeads):
            return say(self.kvHeads, file: "\(kvHeads) kv heads do not divide q's \(heads) heads",
                       option: "\(kvHeads) does not divide \(name(self.heads)) \(heads)")
        case .headDimOutOfRange(let headDim):
            return say(self.headDim, file: "head dim \(headDim) is outside 1...256",
                       option: headDim < 1 ? "must be at least 1, got \(headDim)" : "must be at most 256, got \(headDim)")
        case .valueHeadDimOutOfRange(let headDim):
            return say(valueHeadDim, file: "head dim \(headDim) is outside 1...256",
                       option: headDim < 1 ? "must be at least 1, got \(headDim)" : "must be at most 256, got \(headDim)")
        case .sinkCount, .sinksNotFinite:
            return TensorIOError(sinks ?? "--sinks", error.description)
        case .offsetsTooFew(let keys):
            return TensorIOError(offsets(keys), "needs at least 2 offsets (batch + 1)")
        case .offsetsNotStartingAtZero(let keys, let first):
            return TensorIOError(offsets(keys), "offsets must start at 0, got \(first)")
        case .offsetsDecreasing(let keys, let index, let previous, let next):
            return TensorIOError(offsets(keys), "offsets decrease at index \(index) (\(previous) then \(next))")
        case .offsetBatchesDiffer(let queries, let keys):
            return TensorIOError(offsets(true), "\(keys) sequences, but --cu-seqlens-q has \(queries)")
        case .alibiSlopesNotFinite:
            return TensorIOError(alibiSlopes ?? "--alibi-slopes", "slopes must be finite")
        case .softmaxScaleNotFinite(let scale):
            return ValidationError("--softmax-scale: must be finite, got \(scale)")
        case .windowOutOfRange(let left, let right):
            return ValidationError("--window: sizes must be -1 (unbounded) or non-negative, got \(left),\(right)")
        case .softcapOutOfRange(let softcap):
            return ValidationError("--softcap: must be 0 (off) or positive, got \(softcap)")
        case .dropoutOutOfRange where (0..<1).contains(dropout):
            return ValidationError("--dropout: \(dropout) rounds to 1 in float32; the largest probability is \(1 - Double(Float.ulpOfOne) / 2)")
        case .dropoutOutOfRange:
            return ValidationError("--dropout: probability must be in [0, 1), got \(dropout)")
        case .negativeSequenceLength, .unequalQueryLengths, .negativeFirstHead, .alibiSlopeCount,
             .unknownInstructionSet, .unsupportedInstructionSet:
            // Not reachable from the options and files (the shapes were matched before), but
            // worded all the same, naming what holds the problem's sizes.
            return say(batch, file: error.description, option: error.description)
        }
    }

    private func offsets(_ keys: Bool) -> String {
        (keys ? cuSeqlensK : cuSeqlensQ) ?? (keys ? "--cu-seqlens-k" : "--cu-seqlens-q")
    }

    private func name(_ source: Source) -> String {
        switch source {
        case .file(let path): path
        case .option(let option): option
        }
    }

    private func say(_ source: Source, file: String, option: String) -> Error {
        switch source {
        case .file(let path): TensorIOError(path, file)
        case .option(let name): ValidationError("\(name): \(option)")
        }
    }
}
