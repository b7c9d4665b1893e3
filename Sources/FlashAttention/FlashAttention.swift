/// Exact attention `softmax(Q·Kᵀ·scale + mask)·V` and its gradients, tiled so that nothing of
/// size seqlen_q × seqlen_k is ever held: memory grows linearly with sequence length.
///
/// The pointer entry points read and write the flat layouts that `AttentionProblem` describes;
/// callers own the memory. `threads` workers share the tiles; results are bitwise the same for
/// any thread count.
public enum FlashAttention {
    /// O and the per-row logsumexp of the scores, nothing else.
    public static func forward(_ problem: AttentionProblem,
                               q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                               o: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>,
                               threads: Int) {
        let tiles = ForwardTile(problem: problem, placement: .whole(problem), q: q, k: k, v: v, o: o, lse: lse,
                                rowsPerTile: Tiling.forwardRows(problem), keysPerTile: Tiling.forwardKeys(problem))
        TileScheduler(threads: threads).run(Tile.rowTiles(problem, rows: tiles.rowsPerTile),
                                            scratchFloats: tiles.scratchFloats) { tile, scratch in
            tiles.run(tile, scratch: scratch)
        }
    }

    /// dQ, dK, dV from the inputs, the forward's O and lse, and dO; P is recomputed, not stored.
    /// With `.perQueryHead`, dK and dV are `(…, heads, headDim)`: each query head's contribution,
    /// which summed in head order over a group gives exactly the `.summedOverGroup` result.
    public static func backward(_ problem: AttentionProblem,
                                q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                o: UnsafePointer<Float>, lse: UnsafePointer<Float>, dO: UnsafePointer<Float>,
                                dQ: UnsafeMutablePointer<Float>, dK: UnsafeMutablePointer<Float>,
                                dV: UnsafeMutablePointer<Float>, keyGradients: KeyGradientLayout = .summedOverGroup,
                                threads: Int) {
        let delta = UnsafeMutablePointer<Float>.allocate(capacity: max(1, problem.lseElements))
        defer { delta.deallocate() }
        rowDotProducts(problem, placement: .whole(problem), rows: 0..<problem.sequenceLength(keys: false), dO: dO, o: o, into: delta)
        let tiles = BackwardTiles(problem: problem, placement: .whole(problem), q: q, k: k, v: v, dO: dO, lse: lse, delta: delta,
                                  keyGradients: keyGradients)
        let scheduler = TileScheduler(threads: threads)
        // One fused pass per (batch, kv head) when there are enough of them to share out evenly;
        // otherwise a dK/dV pass over key blocks and a dQ pass over row blocks. Both add every
        // product in the same order, so the choice (which depends on the thread count) never
        // changes a bit of the result.
        let groups = problem.batch * problem.kvHeads
        if problem.headDim % lanes == 0 && groups >= threads && (groups % threads == 0 || groups >= 4 * threads) {
            scheduler.run(Tile.groupTiles(problem), scratchFloats: tiles.scratchFloats) { tile, scratch in
                tiles.runGroupTile(tile, scratch: scratch, dQ: dQ, dK: dK, dV: dV)
            }
        } else {
            scheduler.run(Tile.keyTiles(problem), scratchFloats: tiles.scratchFloats) { tile, scratch in
                tiles.runKeyTile(tile, scratch: scratch, dK: dK, dV: dV)
            }
            scheduler.run(Tile.rowTiles(problem, rows: Tiling.queryRows), scratchFloats: tiles.scratchFloats) { tile, scratch in
                tiles.runQueryTile(tile, scratch: scratch, dQ: dQ)
            }
        }
    }
}

extension FlashAttention {
    /// The dropout factors the kernels apply to head `head` of batch entry `batch`: 0 where a
    /// probability is dropped, 1/(1 − p) where kept, `(seqlen_q, seqlen_k)` row-major. Empty when
    /// the problem has no dropout. For inspecting the mask of small problems; the kernels
    /// regenerate it block by block and never hold it.
    public static func dropoutKeepFactors(_ problem: AttentionProblem, batch: Int, head: Int) -> [Float] {
        guard problem.options.dropout != nil else { return [] }
        let (nq, nk) = (problem.seqlenQ(batch), problem.seqlenK(batch))
        let stride = roundUpToLanes(nk)
        var padded = [Float](repeating: 0, count: nq * stride)
        if nq > 0 && nk > 0 {
            padded.withUnsafeMutableBufferPointer {
                ScoreModifiers(problem: problem).keepFactorsQueryMajor(
                    into: $0.baseAddress!, rowStride: stride, batch: batch, head: head,
                    queries: 0..<nq, keys: 0..<nk, paddedKeys: stride)
            }
        }
        return (0..<nq).flatMap { padded[$0 * stride..<$0 * stride + nk] }
    }
}

/// How the backward lays out dK and dV.
public enum KeyGradientLayout: Sendable {
    /// `(…, kvHeads, headDim)`: the gradients of k and v.
    case summedOverGroup
    /// `(…, heads, headDim)`: each query head's contribution, for callers that sum a split group.
    case perQueryHead

    func elements(_ problem: AttentionProblem) -> Int {
        problem.totalKeys * (self == .perQueryHead ? problem.heads : problem.kvHeads) * problem.headDim
    }
}

extension FlashAttention {
    /// The forward on arrays, writing O (shaped like q) and lse into existing arrays.
    public static func forward(_ problem: AttentionProblem, q: [Float], k: [Float], v: [Float],
                               o: inout [Float], lse: inout [Float], threads: Int) {
        precondition(q.count == problem.queryElements && k.count == problem.keyElements && v.count == problem.keyElements
                     && o.count == problem.queryElements && lse.count == problem.lseElements,
                     "tensor sizes do not match the problem")
        o.withUnsafeMutableBufferPointer { o in
            lse.withUnsafeMutableBufferPointer { lse in
                forward(problem, q: q, k: k, v: v, o: o.start, lse: lse.start, threads: threads)
            }
        }
    }

    /// The forward on arrays: returns O (shaped like q) and lse.
    public static func forward(_ problem: AttentionProblem, q: [Float], k: [Float], v: [Float],
                               threads: Int) -> (o: [Float], lse: [Float]) {
        var o = [Float](repeating: 0, count: problem.queryElements)
        var lse = [Float](repeating: 0, count: problem.lseElements)
        forward(problem, q: q, k: k, v: v, o: &o, lse: &lse, threads: threads)
        return (o, lse)
    }

    /// The backward on arrays, writing dQ (shaped like q) and dK, dV (like k, or with
    /// `.perQueryHead` one slot per query head) into existing arrays.
    public static func backward(_ problem: AttentionProblem, q: [Float], k: [Float], v: [Float],
                                o: [Float], lse: [Float], dO: [Float],
                                dQ: inout [Float], dK: inout [Float], dV: inout [Float],
                                keyGradients: KeyGradientLayout = .summedOverGroup, threads: Int) {
        let keyGradientElements = keyGradients.elements(problem)
        precondition(q.count == problem.queryElements && k.count == problem.keyElements && v.count == problem.keyElements
                     && o.count == problem.queryElements && dO.count == problem.queryElements
                     && lse.count == problem.lseElements && dQ.count == problem.queryElements
                     && dK.count == keyGradientElements && dV.count == keyGradientElements,
                     "tensor sizes do not match the problem")
        dQ.withUnsafeMutableBufferPointer { dQ in
            dK.withUnsafeMutableBufferPointer { dK in
                dV.withUnsafeMutableBufferPointer { dV in
                    backward(problem, q: q, k: k, v: v, o: o, lse: lse, dO: dO,
                             dQ: dQ.start, dK: dK.start, dV: dV.start, keyGradients: keyGradients, threads: threads)
                }
            }
        }
    }

    /// The backward on arrays: returns dQ shaped like q and dK, dV as `keyGradients` says.
    public static func backward(_ problem: AttentionProblem, q: [Float], k: [Float], v: [Float],
                                o: [Float], lse: [Float], dO: [Float], keyGradients: KeyGradientLayout = .summedOverGroup,
                                threads: Int) -> (dQ: [Float], dK: [Float], dV: [Float]) {
        var dQ = [Float](repeating: 0, count: problem.queryElements)
        var dK = [Float](repeating: 0, count: keyGradients.elements(problem)), dV = dK
        backward(problem, q: q, k: k, v: v, o: o, lse: lse, dO: dO, dQ: &dQ, dK: &dK, dV: &dV,
                 keyGradients: keyGradients, threads: threads)
        return (dQ, dK, dV)
    }
}

extension UnsafeMutableBufferPointer<Float> {
    /// The base address; for an empty buffer, which no tile touches, any non-nil pointer.
    var start: UnsafeMutablePointer<Float> { baseAddress ?? UnsafeMutablePointer(bitPattern: 64)! }
}
