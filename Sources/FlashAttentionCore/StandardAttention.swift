/// Textbook attention, for measuring what tiling saves: per head the scores S = Q·Kᵀ·scale are
/// materialised whole (seqlen_q × seqlen_k, in per-worker scratch), P = softmax(S) is stored for
/// every head, O = P·V; the backward reads the stored P:
///   dV = Pᵀ·dO,  dP = dO·Vᵀ,  dS = P ∘ (dP − rowsum(dO ∘ O)),  dQ = dS·K·scale,  dK = dSᵀ·Q·scale.
/// So it holds batch × heads × seqlen_q × seqlen_k floats of P between the passes, and streams all
/// of them through memory in each product, where the tiled kernels keep every block in cache.
///
/// It runs on the same scheduler, with the same register-blocked products, as the tiled kernels:
/// a forward tile is one (batch, head), a backward tile one (batch, kv head) with its group, so
/// the results do not depend on the thread count. Each product walks its N-long dimension in
/// panels of `panel` (as a BLAS GEMM blocks for cache), so that the operand it reuses stays in
/// cache and the N×N matrices are what streams: the textbook algorithm at its best, which is
/// what the IO model's Θ(N·d + N²) assumes. Masks: causal and window; no softcap, ALiBi or dropout.
public enum StandardAttention {
    /// Keys (or rows) per panel of a product: a 256-key panel of Kᵀ or V is 256·D floats, which
    /// stays in L2 up to D = 256.
    package static let panel = 256

    /// Floats of the stored P: every (batch, head), rows `rowStride` apart.
    public static func probabilityElements(_ problem: AttentionProblem) -> Int {
        probabilityOffset(problem, batch: problem.batch, head: 0)
    }

    /// Whether the problem uses only what this algorithm implements.
    public static func supports(_ problem: AttentionProblem) -> Bool {
        let options = problem.options
        return options.softcap == 0 && options.alibiSlopes == nil && options.dropout == nil
    }

    /// Where the stored P of (batch, head) starts: entries one after the other, heads within each.
    package static func probabilityOffset(_ problem: AttentionProblem, batch: Int, head: Int) -> Int {
        let before = (0..<batch).reduce(0) { $0 + problem.heads * problem.seqlenQ($1) * rowStride(problem.seqlenK($1)) }
        return batch < problem.batch ? before + head * problem.seqlenQ(batch) * rowStride(problem.seqlenK(batch)) : before
    }

    /// Floats between rows of S, P and the packed Kᵀ, Vᵀ: the keys padded to whole vectors and one
    /// vector more, so that rows are never a power of two apart: a column of them would otherwise
    /// fall into one cache set, and the 32 rows of Kᵀ a product walks would evict each other.
    package static func rowStride(_ keys: Int) -> Int { roundUpToLanes(keys) + lanes }
}
