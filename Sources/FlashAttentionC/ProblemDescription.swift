import CFlashdist
import FlashAttention

extension flashdist_problem {
    /// The library's problem, checked by the library's own rules (heads, head size, offsets,
    /// window, softcap, dropout, slopes), so C callers get exactly the CLI's errors; what only a C
    /// struct can get wrong (a missing buffer) is this layer's own `CallFailure`.
    func attentionProblem() throws -> AttentionProblem {
        guard batch >= 1 else { throw AttentionError.batchBelowOne(Int(batch)) }
        guard (cu_seqlens_q == nil) == (cu_seqlens_k == nil) else {
            throw CallFailure(status: FLASHDIST_INVALID_PROBLEM,
                              message: "cu_seqlens_q and cu_seqlens_k go together: give both or neither")
        }
        guard alibi_slopes != nil || alibi_count == 0, alibi_count >= 0 else {
            throw CallFailure(status: FLASHDIST_INVALID_PROBLEM, message: "ALiBi slopes: \(alibi_count) values but no buffer")
        }
        guard sinks != nil || sinks_count == 0, sinks_count >= 0 else {
            throw CallFailure(status: FLASHDIST_INVALID_PROBLEM, message: "sinks: \(sinks_count) values but no buffer")
        }
        let (heads, kvHeads, headDim) = (Int(heads), Int(kv_heads), Int(head_dim))
        guard head_dim_v >= 0 else { throw AttentionError.valueHeadDimOutOfRange(Int(head_dim_v)) }
        let valueHeadDim = head_dim_v == 0 ? headDim : Int(head_dim_v)
        var options = AttentionOptions(
            softmaxScale: use_softmax_scale != 0 ? softmax_scale : AttentionOptions.defaultScale(headDim: headDim),
            causal: causal != 0, windowLeft: Int(window_left), windowRight: Int(window_right), softcap: softcap)
        if let alibi_slopes {
            options.alibiSlopes = AlibiSlopes(values: Array(UnsafeBufferPointer(start: alibi_slopes, count: Int(alibi_count))),
                                              heads: heads)
        }
        if let sinks { options.sinks = Array(UnsafeBufferPointer(start: sinks, count: Int(sinks_count))) }
        if dropout_p != 0 { options.dropout = Dropout(probability: dropout_p, seed: dropout_seed) }
        if let cu_seqlens_q, let cu_seqlens_k {
            let offsets = { (pointer: UnsafePointer<Int32>) in (0...Int(batch)).map { Int(pointer[$0]) } }
            return try AttentionProblem(heads: heads, kvHeads: kvHeads, headDim: headDim, valueHeadDim: valueHeadDim,
                                        queryOffsets: offsets(cu_seqlens_q), keyOffsets: offsets(cu_seqlens_k),
                                        options: options)
        }
        return try AttentionProblem(batch: Int(batch), seqlenQ: Int(seqlen_q), seqlenK: Int(seqlen_k),
                                    heads: heads, kvHeads: kvHeads, headDim: headDim, valueHeadDim: valueHeadDim, options: options)
    }
}
