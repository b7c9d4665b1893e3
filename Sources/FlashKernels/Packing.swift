import FlashAttentionCore

// The kernels copy blocks of the (batch, seqlen, heads, headdim) tensors, whose rows lie heads·D
// floats apart, into dense scratch blocks before the products: a product then walks memory in
// order (rows of a dense block are one vector apart, not a multiple of 4 KiB that maps them all
// to one L1 set), the padding to whole vectors is zeros that add nothing, and a transposed copy
// (Qᵀ, Kᵀ, Vᵀ) gives `multiply` its vector operand B contiguous along the columns of the result.

/// Copies `rows` rows of `width` floats (source rows `sourceStride` apart), times `factor`, into a
/// dense block `paddedWidth` wide, zero-filling the extra columns so products over them add
/// nothing. The factor is the softmax scale when packing Q, 1 (exact) otherwise.
@inline(__always)
func packRows(_ source: UnsafePointer<Float>, sourceStride: Int, rows: Int, width: Int,
              into block: UnsafeMutablePointer<Float>, paddedWidth: Int, times factor: Float = 1) {
    for r in 0..<rows {
        let from = source + r * sourceStride, to = block + r * paddedWidth
        for c in 0..<width { to[c] = from[c] * factor }
        (to + width).update(repeating: 0, count: paddedWidth - width)
    }
}

/// Writes the transpose of `rows` source rows of `width` floats, times `factor`, into a block with
/// `paddedRows` rows (one per source column) of `paddedColumns` floats, zero-filling both
/// paddings: Qᵀ for the forward's scores, Kᵀ and Vᵀ for the backward's.
@inline(__always)
func packTransposed(_ source: UnsafePointer<Float>, sourceStride: Int, rows: Int, width: Int,
                    into block: UnsafeMutablePointer<Float>, paddedRows: Int, paddedColumns: Int,
                    times factor: Float = 1) {
    block.update(repeating: 0, count: paddedRows * paddedColumns)
    for r in 0..<rows {
        let from = source + r * sourceStride
        for d in 0..<width { block[d * paddedColumns + r] = from[d] * factor }
    }
}
