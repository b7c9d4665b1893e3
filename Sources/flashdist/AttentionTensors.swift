import FlashAttention
import TensorIO

/// q, k, v (and dO) read from .npy files and checked against each other: flash-attn's layout
/// q `(batch, seqlen_q, heads, head_dim)`, k and v `(batch, seqlen_k, kv_heads, head_dim)`, or
/// the packed `(total, heads, head_dim)` of a variable-length batch.
struct AttentionInputs {
    let layout: AttentionLayout
    let q: [Float], k: [Float], v: [Float]
    let dO: [Float]?

    static func load(q qPath: String, k kPath: String, v vPath: String, dO dOPath: String?,
                     mask: MaskOptions, scores: ScoreOptions) throws -> AttentionInputs {
        let q = try Npy.readFloats(qPath), k = try Npy.readFloats(kPath), v = try Npy.readFloats(vPath)
        let dO = try dOPath.map { path throws(TensorIOError) in try Npy.readFloats(path) }
        let layout = try AttentionLayout(q: (qPath, q.shape), k: (kPath, k.shape), v: (vPath, v.shape),
                                         dO: dOPath.flatMap { path in dO.map { (path, $0.shape) } },
                                         mask: mask, scores: scores)
        return AttentionInputs(layout: layout, q: q.values, k: k.values, v: v.values, dO: dO?.values)
    }
}
