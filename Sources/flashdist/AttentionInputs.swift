import FlashAttention
import TensorIO

/// q, k, v (and dO) read from .npy files and checked against each other: flash-attn's layout
/// q `(batch, seqlen_q, heads, head_dim)`, k and v `(batch, seqlen_k, kv_heads, head_dim)`.
struct AttentionInputs {
    let problem: AttentionProblem
    let qShape: [Int], kShape: [Int]
    let q: [Float], k: [Float], v: [Float]
    let dO: [Float]?

    static func load(q qPath: String, k kPath: String, v vPath: String, dO dOPath: String?,
                     mask: MaskOptions) throws -> AttentionInputs {
        let q = try Npy.readFloats(qPath), k = try Npy.readFloats(kPath), v = try Npy.readFloats(vPath)
        let dO = try dOPath.map { path throws(TensorIOError) in try Npy.readFloats(path) }
        guard q.shape.count == 4 else {
            throw TensorIOError(qPath, "shape \(shapeText(q.shape)) is not (batch, seqlen_q, heads, head_dim)")
        }
        guard k.shape.count == 4 else {
            throw TensorIOError(kPath, "shape \(shapeText(k.shape)) is not (batch, seqlen_k, kv_heads, head_dim)")
        }
        let (batch, seqlenQ, heads, headDim) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        guard k.shape[0] == batch, k.shape[3] == headDim else {
            throw TensorIOError(kPath, "shape \(shapeText(k.shape)) does not match q's batch \(batch) and head dim \(headDim)")
        }
        guard v.shape == k.shape else { throw TensorIOError(vPath, "shape \(shapeText(v.shape)) differs from k's \(shapeText(k.shape))") }
        guard k.shape[2] >= 1, heads % k.shape[2] == 0 else {
            throw TensorIOError(kPath, "\(k.shape[2]) kv heads do not divide q's \(heads) heads")
        }
        if let dOPath, let dO, dO.shape != q.shape {
            throw TensorIOError(dOPath, "shape \(shapeText(dO.shape)) differs from q's \(shapeText(q.shape))")
        }
        guard (1...256).contains(headDim) else { throw TensorIOError(qPath, "head dim \(headDim) is outside 1...256") }
        let problem = try AttentionProblem(batch: batch, seqlenQ: seqlenQ, seqlenK: k.shape[1], heads: heads,
                                           kvHeads: k.shape[2], headDim: headDim,
                                           options: mask.attentionOptions(headDim: headDim))
        return AttentionInputs(problem: problem, qShape: q.shape, kShape: k.shape,
                               q: q.values, k: k.values, v: v.values, dO: dO?.values)
    }
}
