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
        let layout = try AttentionLayout(q: (qPath, q.shape), k: (kPath, k.shape), v: (vPath, v.shape),
                                         dO: dOPath.flatMap { path in dO.map { (path, $0.shape) } }, mask: mask)
        return AttentionInputs(problem: layout.problem, qShape: layout.qShape, kShape: layout.kShape,
                               q: q.values, k: k.values, v: v.values, dO: dO?.values)
    }
}

/// The shapes of q, k, v (and dO) checked against each other, and the problem they make.
struct AttentionLayout {
    let problem: AttentionProblem
    let qShape: [Int], kShape: [Int]

    var lseShape: [Int] { [problem.batch, problem.heads, qShape[1]] }

    /// From the files' headers alone, reading no data: what every rank of a distributed run
    /// checks before any compute.
    static func read(q: String, k: String, v: String, dO: String?, mask: MaskOptions) throws -> AttentionLayout {
        let qShape = try Npy.readFloatHeader(q).shape, kShape = try Npy.readFloatHeader(k).shape
        let vShape = try Npy.readFloatHeader(v).shape
        let dOShape = try dO.map { path throws(TensorIOError) in try Npy.readFloatHeader(path).shape }
        return try AttentionLayout(q: (q, qShape), k: (k, kShape), v: (v, vShape),
                                   dO: dO.flatMap { path in dOShape.map { (path, $0) } }, mask: mask)
    }

    /// Checks the shapes of the files at the given paths; errors name the offending file.
    init(q: (path: String, shape: [Int]), k: (path: String, shape: [Int]), v: (path: String, shape: [Int]),
         dO: (path: String, shape: [Int])?, mask: MaskOptions) throws {
        guard q.shape.count == 4 else {
            throw TensorIOError(q.path, "shape \(shapeText(q.shape)) is not (batch, seqlen_q, heads, head_dim)")
        }
        guard k.shape.count == 4 else {
            throw TensorIOError(k.path, "shape \(shapeText(k.shape)) is not (batch, seqlen_k, kv_heads, head_dim)")
        }
        let (batch, heads, headDim) = (q.shape[0], q.shape[2], q.shape[3])
        guard k.shape[0] == batch, k.shape[3] == headDim else {
            throw TensorIOError(k.path, "shape \(shapeText(k.shape)) does not match q's batch \(batch) and head dim \(headDim)")
        }
        guard v.shape == k.shape else { throw TensorIOError(v.path, "shape \(shapeText(v.shape)) differs from k's \(shapeText(k.shape))") }
        guard k.shape[2] >= 1, heads % k.shape[2] == 0 else {
            throw TensorIOError(k.path, "\(k.shape[2]) kv heads do not divide q's \(heads) heads")
        }
        if let dO, dO.shape != q.shape {
            throw TensorIOError(dO.path, "shape \(shapeText(dO.shape)) differs from q's \(shapeText(q.shape))")
        }
        guard (1...256).contains(headDim) else { throw TensorIOError(q.path, "head dim \(headDim) is outside 1...256") }
        problem = try AttentionProblem(batch: batch, seqlenQ: q.shape[1], seqlenK: k.shape[1], heads: heads,
                                       kvHeads: k.shape[2], headDim: headDim, options: mask.attentionOptions(headDim: headDim))
        (qShape, kShape) = (q.shape, k.shape)
    }
}
