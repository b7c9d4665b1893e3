/// How the kernels of a caller that holds a window of the query rows (`RowPlacement`) and is
/// handed the keys a range at a time, in key order (an MPI rank of the ring partition), cut the
/// work: the kernels themselves are `WindowForward` and `WindowBackward` in FlashAttention.
///
/// Every row gets the very additions of a single process with the same `Tiling`: the forward
/// visits, for each row, the key blocks its whole row block visits there (`forwardRows(for:)` rows,
/// counted from the entry's first row), in key order, carrying the online softmax's state from one
/// range of keys to the next; the backward adds each backward key block's dS·K into dQ in key
/// order, and the block's dK and dV over the rows of the `backwardRows` blocks that see it, in row
/// order, one head at a time, so a caller that hands the per-head sums from the ranks of earlier
/// rows to those of later rows, and adds the heads of a group in order at the end, gets exactly
/// the sums of one pass.
public enum WindowAttention {
    /// The key blocks of the sequence axis, in order, from the start of each batch entry (for a
    /// fixed-length batch the same blocks serve every entry): whole blocks of the forward
    /// (`keyColumns`) and of the backward (`backwardKeys(for:)`) at once, so that a range of them
    /// starts every block of either pass where one process starts it.
    public static func keyBlocks(_ problem: AttentionProblem, tiling: Tiling) -> [Range<Int>] {
        let bc = blockWidth(problem, tiling: tiling)
        let entries = problem.packedLSE ? Array(0..<problem.batch) : [0]
        return entries.flatMap { b in
            stride(from: 0, to: problem.seqlenK(b), by: bc).map {
                problem.sequenceRange(b, $0..<min($0 + bc, problem.seqlenK(b)), keys: true)
            }
        }
    }

    /// The keys (ranges of the sequence axis, in order) that the forward of the rows in `window`
    /// visits: what a rank holding those rows must be sent.
    public static func keysVisited(_ problem: AttentionProblem, rows window: Range<Int>, tiling: Tiling) -> [Range<Int>] {
        var keys: [Range<Int>] = []
        for part in ForwardParts(problem, rows: window, tiling: tiling).rowBlocks {
            let range = problem.sequenceRange(part.batch, part.keys, keys: true)
            guard !range.isEmpty else { continue }
            if let last = keys.last, last.upperBound >= range.lowerBound {
                keys[keys.count - 1] = min(last.lowerBound, range.lowerBound)..<max(last.upperBound, range.upperBound)
            } else {
                keys.append(range)
            }
        }
        return keys
    }

    /// The rows (ranges of the sequence axis) whose dK/dV contributions to `keys` (whole key
    /// blocks) the backward adds: every row of the `backwardRows` blocks that see some key of them.
    public static func rowsVisiting(_ problem: AttentionProblem, keys: Range<Int>, tiling: Tiling) -> [Range<Int>] {
        let br = tiling.backwardRows
        return (0..<problem.batch).compactMap { b in
            let mask = problem.mask(b)
            let seen = mask.rows(seeing: problem.entryRange(b, of: keys, keys: true))
            guard !seen.isEmpty else { return nil }
            let rows = seen.lowerBound / br * br..<min((seen.upperBound + br - 1) / br * br, mask.seqlenQ)
            return problem.sequenceRange(b, rows, keys: false)
        }
    }

    /// Floats of the per-head dK and dV sums of key block `keys`, which pass from rank to rank.
    public static func partialFloats(_ problem: AttentionProblem, keys: Range<Int>) -> Int {
        PartialLayout(problem, keys: keys).floats
    }

    /// dK and dV of key block `keys`, `(entries, keys.count, kvHeads, headDim)` and `(…,
    /// valueHeadDim)`, from the complete per-head sums: the heads of each group added in order from
    /// zero, as one process adds them. With `.perQueryHead`, `(entries, keys.count, heads, …)`:
    /// each head's own sum, for a caller that adds a group split between ranks.
    public static func keyGradients(_ problem: AttentionProblem, keys: Range<Int>, partials: UnsafePointer<Float>,
                                    layout gradients: KeyGradientLayout = .summedOverGroup) -> (dK: [Float], dV: [Float]) {
        let layout = PartialLayout(problem, keys: keys)
        return (gradientOf(problem, keys: keys, partials: partials, layout: layout, gradients: gradients, value: false),
                gradientOf(problem, keys: keys, partials: partials, layout: layout, gradients: gradients, value: true))
    }

    /// dK (or dV, with `value`) of `keyGradients` from the per-head sums.
    private static func gradientOf(_ problem: AttentionProblem, keys: Range<Int>, partials: UnsafePointer<Float>,
                                   layout: PartialLayout, gradients: KeyGradientLayout, value: Bool) -> [Float] {
        let d = value ? problem.valueHeadDim : problem.headDim, dp = roundUpToLanes(d)
        let heads = gradients == .perQueryHead ? problem.heads : problem.kvHeads
        var result = [Float](repeating: 0, count: layout.entries.count * keys.count * heads * d)
        if gradients == .perQueryHead {
            for (e, entry) in layout.entries.enumerated() {
                for h in 0..<heads {
                    let sums = partials + layout.offset(e, head: h, value: value)
                    for t in 0..<entry.keys.count {
                        let index = ((e * keys.count + t) * heads + h) * d
                        for c in 0..<d { result[index + c] = sums[t * dp + c] }
                    }
                }
            }
            return result
        }
        var sum = [Float](repeating: 0, count: keys.count * dp)
        for (e, entry) in layout.entries.enumerated() {
            for kvHead in 0..<problem.kvHeads {
                let count = entry.keys.count * dp
                for c in 0..<count { sum[c] = 0 }
                for g in 0..<problem.groupSize {
                    let sums = partials + layout.offset(e, head: kvHead * problem.groupSize + g, value: value)
                    for c in 0..<count { sum[c] += sums[c] }
                }
                for t in 0..<entry.keys.count {
                    let index = ((e * keys.count + t) * problem.kvHeads + kvHead) * d
                    for c in 0..<d { result[index + c] = sum[t * dp + c] }
                }
            }
        }
        return result
    }

    /// Keys per ring block: a whole number of the forward's and of the backward's key blocks.
    static func blockWidth(_ problem: AttentionProblem, tiling: Tiling) -> Int {
        let (a, b) = (tiling.keyColumns, tiling.backwardKeys(for: problem))
        var (x, y) = (a, b)
        while y != 0 { (x, y) = (y, x % y) }
        return a / x * b
    }
}

/// Where each (entry, head) sum of a key block sits among its partials: for each entry that has
/// keys in the block, for each head, dK `keys × paddedDim` floats then dV `keys × paddedValueDim`.
package struct PartialLayout {
    package let entries: [(batch: Int, keys: Range<Int>)]
    package let offsets: [Int]
    package let heads, paddedDim, paddedValueDim: Int
    /// Floats of all the sums.
    package let floats: Int

    package init(_ problem: AttentionProblem, keys: Range<Int>) {
        entries = (0..<problem.batch).compactMap { b in
            let part = problem.entryRange(b, of: keys, keys: true)
            return part.isEmpty ? nil : (b, part)
        }
        (heads, paddedDim, paddedValueDim) = (problem.heads, roundUpToLanes(problem.headDim), roundUpToLanes(problem.valueHeadDim))
        var offsets: [Int] = [], next = 0
        for entry in entries {
            offsets.append(next)
            next += heads * entry.keys.count * (paddedDim + paddedValueDim)
        }
        (self.offsets, floats) = (offsets, next)
    }

    package func offset(_ e: Int, head h: Int, value: Bool) -> Int {
        offsets[e] + (h * (paddedDim + paddedValueDim) + (value ? paddedDim : 0)) * entries[e].keys.count
    }
}

/// The forward's tiles for a window of rows: per entry and head, the part of each row block in
/// the window, with the keys the whole block visits.
package struct ForwardParts {
    package struct Part {
        package let batch, head: Int
        package let rows, keys: Range<Int>
    }
    package let rowBlocks: [Part]
    package let parts: [Part]

    package init(_ problem: AttentionProblem, rows window: Range<Int>, tiling: Tiling) {
        let br = tiling.forwardRows(for: problem)
        var blocks: [Part] = []
        for b in 0..<problem.batch {
            let mine = problem.entryRange(b, of: window, keys: false), mask = problem.mask(b)
            var start = mine.lowerBound / br * br
            while start < mine.upperBound {
                let block = start..<min(start + br, mask.seqlenQ)
                blocks.append(Part(batch: b, head: 0, rows: block.clamped(to: mine), keys: mask.keys(seenBy: block)))
                start += br
            }
        }
        rowBlocks = blocks
        parts = blocks.flatMap { block in
            (0..<problem.heads).map { Part(batch: block.batch, head: $0, rows: block.rows, keys: block.keys) }
        }
    }
}


/// The forward of a window of rows on one instruction set's kernels (FlashAttention's
/// `WindowForward` holds one).
package protocol WindowForwardKernel: AnyObject {
    func visit(keys: Range<Int>, k: UnsafePointer<Float>, v: UnsafePointer<Float>)
    func finish() -> (o: [Float], lse: [Float], lseResidual: [Float])
}

/// The backward of a window of rows on one instruction set's kernels (FlashAttention's
/// `WindowBackward` holds one).
package protocol WindowBackwardKernel: AnyObject {
    func accumulate(keys: Range<Int>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, partials: UnsafeMutablePointer<Float>)
    func finish() -> [Float]
}
