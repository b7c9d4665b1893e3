import CPrefetch
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
        prefetchAhead(from, stride: sourceStride, row: r, of: rows, width: width)
        for c in 0..<width { to[c] = from[c] * factor }
        (to + width).update(repeating: 0, count: paddedWidth - width)
    }
}

/// Writes the transpose of `rows` source rows of `width` floats, times `factor`, as a block of
/// `paddedRows` rows (one per source column) and `paddedColumns` columns cut into panels of 16
/// columns, each panel's rows one vector after the other, zero-filling both paddings: Qᵀ for the
/// forward's scores, Kᵀ and Vᵀ for the backward's. A product reads its B operand a panel at a time
/// down all its rows; stored row-major, those vectors would lie a row apart, 512 B or 1 KiB, and
/// share a few of L1's sets, evicting one another. In panels they are consecutive lines.
@inline(__always)
func packTransposed(_ source: UnsafePointer<Float>, sourceStride: Int, rows: Int, width: Int,
                    into block: UnsafeMutablePointer<Float>, paddedRows: Int, paddedColumns: Int,
                    times factor: Float = 1) {
    block.update(repeating: 0, count: paddedRows * paddedColumns)
    for r in 0..<rows {
        let from = source + r * sourceStride, column = block + r / lanes * paddedRows * lanes + r % lanes
        prefetchAhead(from, stride: sourceStride, row: r, of: rows, width: width)
        for d in 0..<width { column[d * lanes] = from[d] * factor }
    }
}

/// Copies `rows` source rows of `width` floats into a block of `paddedRows` rows and `paddedWidth`
/// columns cut into panels of 16 columns, as `packTransposed` lays out its copies, zero-filling
/// both paddings: K for the backward's dQ += dS·K and V for the forward's O += P·V, which read it
/// down 64–256 rows a panel at a time (rows D floats apart would put a panel's lines in a few of
/// L1's sets at D = 128).
@inline(__always)
func packPanels(_ source: UnsafePointer<Float>, sourceStride: Int, rows: Int, width: Int,
                into block: UnsafeMutablePointer<Float>, paddedRows: Int, paddedWidth: Int) {
    if rows < paddedRows || width < paddedWidth { block.update(repeating: 0, count: paddedRows * paddedWidth) }
    let whole = width / lanes * lanes
    for r in 0..<rows {
        let from = source + r * sourceStride, row = block + r * lanes
        prefetchAhead(from, stride: sourceStride, row: r, of: rows, width: width)
        var c = 0
        while c < whole { Lanes.load(from + c).store(row + c * paddedRows); c += lanes }
        for c in whole..<width { row[c / lanes * paddedRows * lanes + c % lanes] = from[c] }
    }
}

/// One head's rows of Q·scale and dO packed once for every key block to read, rows `dp` and
/// `dvp` floats wide, from row `firstRow` of the entry on, rather than once for each (row block,
/// key block) pair (docs/internals.md gives what that re-packing cost).
struct PackedRows {
    let q, dO: UnsafeMutablePointer<Float>
    let firstRow: Int

    /// Packs head h's rows `rows` of entry b of q and dO, which `placement` places.
    init(_ problem: AttentionProblem, placement: RowPlacement, q: UnsafePointer<Float>, dO: UnsafePointer<Float>,
         batch b: Int, head h: Int, rows: Range<Int>) {
        let (d, dv) = (problem.headDim, problem.valueHeadDim), (dp, dvp) = (roundUpToLanes(d), roundUpToLanes(dv))
        self.q = .allocate(capacity: max(1, rows.count * dp))
        self.dO = .allocate(capacity: max(1, rows.count * dvp))
        firstRow = rows.lowerBound
        packRows(q + placement.queryIndex(batch: b, row: rows.lowerBound, head: h), sourceStride: problem.heads * d,
                 rows: rows.count, width: d, into: self.q, paddedWidth: dp, times: problem.options.softmaxScale)
        packRows(dO + placement.outputIndex(batch: b, row: rows.lowerBound, head: h), sourceStride: problem.heads * dv,
                 rows: rows.count, width: dv, into: self.dO, paddedWidth: dvp)
    }

    func deallocate() {
        q.deallocate()
        dO.deallocate()
    }
}

/// Asks for `rows` rows of `width` floats, `stride` apart, to be brought into cache ahead of their
/// use (one prefetch per cache line).
@inline(__always)
func prefetchRows(_ source: UnsafePointer<Float>, stride: Int, rows: Int, width: Int) {
    let line = 64
    for r in 0..<rows {
        let start = UInt(bitPattern: source + r * stride), end = UInt(bitPattern: source + r * stride + width)
        var address = start & ~UInt(line - 1)
        while address < end {
            flashdist_prefetch(UnsafeRawPointer(bitPattern: address))
            address += UInt(line)
        }
    }
}

/// While a copy reads row `row` of `rows` (at `from`, rows `stride` apart), asks for the row a few
/// ahead: the rows of Q, K and V lie heads·D floats apart, each a run of a few lines that the
/// hardware prefetchers do not follow, so a copy that waited on each in turn would pay a trip to
/// L3 (or memory) per row; eight rows ahead keeps about as many lines in flight as L1 can track.
@inline(__always)
func prefetchAhead(_ from: UnsafePointer<Float>, stride: Int, row: Int, of rows: Int, width: Int) {
    let ahead = 8
    if row + ahead < rows { prefetchRows(from + ahead * stride, stride: stride, rows: 1, width: width) }
}
