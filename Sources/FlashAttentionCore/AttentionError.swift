/// A problem, option or kernel configuration the library refuses. Each rule is checked once, by
/// the library (`AttentionProblem.init`, `AttentionOptions.validate`, `InstructionSet.chosen`);
/// the cases carry the values a caller needs to word the error in its own terms (the command
/// line names the file or option), and `description` words it in the library's.
public enum AttentionError: Error, CustomStringConvertible, Equatable {
    case batchBelowOne(Int)
    case negativeSequenceLength(query: Int, key: Int)
    case headsBelowOne(heads: Int, kvHeads: Int)
    case headsNotMultipleOfKVHeads(heads: Int, kvHeads: Int)
    case headDimOutOfRange(Int)
    /// v's head dim (when v has its own) outside 1…256.
    case valueHeadDimOutOfRange(Int)
    /// cu_seqlens with fewer than two entries (`keys`: the key offsets, else the query ones).
    case offsetsTooFew(keys: Bool)
    case offsetsNotStartingAtZero(keys: Bool, first: Int)
    /// Offset `index` (`next`) is below the one before it (`previous`).
    case offsetsDecreasing(keys: Bool, index: Int, previous: Int, next: Int)
    case offsetBatchesDiffer(queries: Int, keys: Int)
    /// lse laid out `(batch, heads, seqlen_q)` for entries of different query lengths.
    case unequalQueryLengths
    case negativeFirstHead(Int)
    /// `values` ALiBi slopes where `heads` (or `batch × heads`) were needed.
    case alibiSlopeCount(values: Int, heads: Int, batch: Int)
    case alibiSlopesNotFinite
    /// `values` sink logits where one per query head (`heads`) was needed.
    case sinkCount(values: Int, heads: Int)
    case sinksNotFinite
    case softmaxScaleNotFinite(Float)
    case windowOutOfRange(left: Int, right: Int)
    case softcapOutOfRange(Float)
    case dropoutOutOfRange(Float)
    /// `FLASHDIST_ISA` names no instruction set.
    case unknownInstructionSet(String)
    /// `FLASHDIST_ISA` names one this CPU lacks.
    case unsupportedInstructionSet(InstructionSet)

    public var description: String {
        switch self {
        case .batchBelowOne(let batch): "batch must be at least 1, got \(batch)"
        case .negativeSequenceLength(let query, let key): "sequence lengths must be non-negative, got \(query) and \(key)"
        case .headsBelowOne(let heads, let kvHeads): "heads and kv heads must be at least 1, got \(heads) and \(kvHeads)"
        case .headsNotMultipleOfKVHeads(let heads, let kvHeads): "heads (\(heads)) must be a multiple of kv heads (\(kvHeads))"
        case .headDimOutOfRange(let headDim): "head dim must be between 1 and 256, got \(headDim)"
        case .valueHeadDimOutOfRange(let headDim): "value head dim must be between 1 and 256, got \(headDim)"
        case .offsetsTooFew(let keys), .offsetsNotStartingAtZero(let keys, _), .offsetsDecreasing(let keys, _, _, _):
            "\(keys ? "key" : "query") offsets must start at 0 and never decrease"
        case .offsetBatchesDiffer: "query and key offsets name different batch sizes"
        case .unequalQueryLengths: "lse laid out (batch, heads, seqlen_q) needs equal query lengths; use the packed layout"
        case .negativeFirstHead(let head): "first head must be non-negative, got \(head)"
        case .alibiSlopeCount(let values, let heads, let batch):
            "ALiBi slopes must have \(heads) (heads) or \(batch)×\(heads) (batch, heads) values, got \(values)"
        case .alibiSlopesNotFinite: "ALiBi slopes must be finite"
        case .sinkCount(let values, let heads): "sinks must have \(heads) values (one per query head), got \(values)"
        case .sinksNotFinite: "sinks must be finite"
        case .softmaxScaleNotFinite(let scale): "softmax scale must be finite, got \(scale)"
        case .windowOutOfRange(let left, let right):
            "window sizes must be -1 (unbounded) or non-negative, got (\(left), \(right))"
        case .softcapOutOfRange(let softcap): "softcap must be 0 (off) or positive, got \(softcap)"
        case .dropoutOutOfRange(let p): "dropout probability must be in [0, 1), got \(p)"
        case .unknownInstructionSet(let name):
            "FLASHDIST_ISA: '\(name)' is not one of \(InstructionSet.allCases.map(\.rawValue).joined(separator: ", "))"
        case .unsupportedInstructionSet(let set):
            "FLASHDIST_ISA: \(set.rawValue) is not supported by this CPU (\(CPUInfo.host.model)),"
                + " which has \(InstructionSet.supported.map(\.rawValue).joined(separator: ", "))"
        }
    }
}
