/// What one attention call computes: the head counts and size, where each batch entry's rows
/// live, and the options that shape the scores.
///
/// Tensors follow flash-attn: q, dQ are `(batch, seqlen_q, heads, headDim)`, k, dK `(batch,
/// seqlen_k, kvHeads, headDim)`; v, dV are `(batch, seqlen_k, kvHeads, valueHeadDim)` and o, dO
/// `(batch, seqlen_q, heads, valueHeadDim)`, since O = P·V takes its width from V (MLA models
/// score with 192 dims and carry 128). C order, float32; `lse` is `(batch, heads, seqlen_q)`.
/// Variable-length batches pack the rows of every entry one after the other (`(total_q, heads,
/// headDim)`) and keep `lse` as `(heads, total_q)`, as flash_attn_varlen_func does. A fixed-length
/// batch is the packed layout with offsets 0, N, 2N, …, so the kernels see only the packed form.
public struct AttentionProblem: Sendable {
    public let heads: Int
    public let kvHeads: Int
    /// Width of q and k rows: the dimension scores are summed over.
    public let headDim: Int
    /// Width of v and o rows; headDim unless given.
    public let valueHeadDim: Int
    /// Row offsets of each batch entry, `batch + 1` of them, starting at 0 (cu_seqlens).
    public let queryOffsets: [Int]
    public let keyOffsets: [Int]
    /// Whether `lse` is laid out `(heads, total_q)` (varlen) rather than `(batch, heads, seqlen_q)`.
    public let packedLSE: Bool
    /// Index of this problem's first query head in the whole problem, for a caller (an MPI rank)
    /// that computes only some heads: ALiBi slopes and dropout are keyed by the whole problem's heads.
    public let firstHead: Int
    public let options: AttentionOptions

    /// A fixed-length batch: every entry has `seqlenQ` queries and `seqlenK` keys.
    public init(batch: Int, seqlenQ: Int, seqlenK: Int, heads: Int, kvHeads: Int, headDim: Int,
                valueHeadDim: Int? = nil, firstHead: Int = 0, options: AttentionOptions) throws(AttentionError) {
        guard batch >= 1 else { throw .batchBelowOne(batch) }
        guard seqlenQ >= 0, seqlenK >= 0 else { throw .negativeSequenceLength(query: seqlenQ, key: seqlenK) }
        try self.init(heads: heads, kvHeads: kvHeads, headDim: headDim, valueHeadDim: valueHeadDim,
                      queryOffsets: (0...batch).map { $0 * seqlenQ },
                      keyOffsets: (0...batch).map { $0 * seqlenK },
                      packedLSE: false, firstHead: firstHead, options: options)
    }

    /// A variable-length batch given by cu_seqlens offsets (flash_attn_varlen_func).
    public init(heads: Int, kvHeads: Int, headDim: Int, valueHeadDim: Int? = nil, queryOffsets: [Int], keyOffsets: [Int],
                packedLSE: Bool = true, firstHead: Int = 0, options: AttentionOptions) throws(AttentionError) {
        guard heads >= 1, kvHeads >= 1 else { throw .headsBelowOne(heads: heads, kvHeads: kvHeads) }
        guard heads % kvHeads == 0 else { throw .headsNotMultipleOfKVHeads(heads: heads, kvHeads: kvHeads) }
        guard (1...256).contains(headDim) else { throw .headDimOutOfRange(headDim) }
        let valueHeadDim = valueHeadDim ?? headDim
        guard (1...256).contains(valueHeadDim) else { throw .valueHeadDimOutOfRange(valueHeadDim) }
        for (keys, offsets) in [(false, queryOffsets), (true, keyOffsets)] {
            guard offsets.count >= 2 else { throw .offsetsTooFew(keys: keys) }
            guard offsets[0] == 0 else { throw .offsetsNotStartingAtZero(keys: keys, first: offsets[0]) }
            if let drop = offsets.indices.dropFirst().first(where: { offsets[$0] < offsets[$0 - 1] }) {
                throw .offsetsDecreasing(keys: keys, index: drop, previous: offsets[drop - 1], next: offsets[drop])
            }
        }
        guard queryOffsets.count == keyOffsets.count else {
            throw .offsetBatchesDiffer(queries: queryOffsets.count - 1, keys: keyOffsets.count - 1)
        }
        if !packedLSE {
            let lengths = Set(zip(queryOffsets, queryOffsets.dropFirst()).map { $1 - $0 })
            guard lengths.count <= 1 else { throw .unequalQueryLengths }
        }
        try options.validate()
        guard firstHead >= 0 else { throw .negativeFirstHead(firstHead) }
        if let alibi = options.alibiSlopes {
            let batch = queryOffsets.count - 1
            guard alibi.heads >= firstHead + heads,
                  alibi.values.count == alibi.heads || alibi.values.count == batch * alibi.heads else {
                throw .alibiSlopeCount(values: alibi.values.count, heads: firstHead + heads, batch: batch)
            }
        }
        if let sinks = options.sinks, sinks.count != heads {
            throw .sinkCount(values: sinks.count, heads: heads)
        }
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.valueHeadDim = valueHeadDim
        self.queryOffsets = queryOffsets
        self.keyOffsets = keyOffsets
        self.packedLSE = packedLSE
        self.firstHead = firstHead
        self.options = options
    }

    public var batch: Int { queryOffsets.count - 1 }
    public var totalQueries: Int { queryOffsets[batch] }
    public var totalKeys: Int { keyOffsets[batch] }
    /// Query heads that share one kv head (GQA/MQA).
    public var groupSize: Int { heads / kvHeads }

    /// Floats of q and dQ.
    public var queryElements: Int { totalQueries * heads * headDim }
    /// Floats of k and dK.
    public var keyElements: Int { totalKeys * kvHeads * headDim }
    /// Floats of v and dV.
    public var valueElements: Int { totalKeys * kvHeads * valueHeadDim }
    /// Floats of o and dO.
    public var outputElements: Int { totalQueries * heads * valueHeadDim }
    public var lseElements: Int { totalQueries * heads }

    package func seqlenQ(_ b: Int) -> Int { queryOffsets[b + 1] - queryOffsets[b] }
    package func seqlenK(_ b: Int) -> Int { keyOffsets[b + 1] - keyOffsets[b] }
    /// The longest entry's rows and keys: what per-entry buffers and tiles are sized for.
    package var longestQueries: Int { (0..<batch).map(seqlenQ).max() ?? 0 }
    package var longestKeys: Int { (0..<batch).map(seqlenK).max() ?? 0 }
    package func mask(_ b: Int) -> AttentionMask {
        AttentionMask(seqlenQ: seqlenQ(b), seqlenK: seqlenK(b), options: options)
    }

    /// The two products of a forward over every batch entry and head, 2·D flops per score for
    /// Q·Kᵀ and 2·Dv per score for P·V: flash-attn's convention (4·D when Dv = D), counting masked
    /// entries only where the mask is causal (half).
    public var forwardFlops: Double {
        var pairs = 0.0
        for b in 0..<batch { pairs += Double(seqlenQ(b)) * Double(seqlenK(b)) }
        return 2 * pairs * Double(heads * (headDim + valueHeadDim)) * (options.causal ? 0.5 : 1)
    }
}
