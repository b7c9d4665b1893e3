/// The keys each query row of one batch entry may see.
///
/// Masks are aligned bottom-right: query i sits on key diagonal `i + seqlenK − seqlenQ`. Causal
/// allows keys up to the diagonal; a window (left, right) allows keys within left before and
/// right after it. Every row therefore sees one contiguous range of keys, and both ends of that
/// range never decrease with i, so the keys a block of rows can see (and the rows a block of keys
/// can be seen by) are a single range too: that is what lets whole blocks be skipped.
package struct AttentionMask {
    package let seqlenQ: Int
    package let seqlenK: Int
    /// Diagonal offset: query i is aligned with key i + shift.
    package let shift: Int
    /// -1 when unbounded.
    package let left: Int
    package let right: Int

    package init(seqlenQ: Int, seqlenK: Int, options: AttentionOptions) {
        self.seqlenQ = seqlenQ
        self.seqlenK = seqlenK
        shift = seqlenK - seqlenQ
        // A side at least as long as both sequences already reaches past every key (left ≥
        // seqlenK, right ≥ seqlenQ suffice): unbounded, which also keeps the index arithmetic
        // below from overflowing with the largest values --window accepts.
        let reach = max(seqlenQ, seqlenK)
        left = options.windowLeft >= reach ? -1 : options.windowLeft
        let right = options.windowRight >= reach ? -1 : options.windowRight
        self.right = options.causal ? (right < 0 ? 0 : min(right, 0)) : right
    }

    /// First key row i sees (may exceed lastKey: the row then sees nothing).
    @inline(__always) package func firstKey(row i: Int) -> Int { left < 0 ? 0 : max(0, i + shift - left) }
    /// Last key row i sees (may be below firstKey, or negative).
    @inline(__always) package func lastKey(row i: Int) -> Int {
        right < 0 ? seqlenK - 1 : min(seqlenK - 1, i + shift + right)
    }

    /// The keys some row of `rows` may see, as a half-open range; empty when all are masked.
    package func keys(seenBy rows: Range<Int>) -> Range<Int> {
        guard !rows.isEmpty else { return 0..<0 }
        let lo = firstKey(row: rows.lowerBound), hi = lastKey(row: rows.upperBound - 1) + 1
        return lo < hi ? lo..<hi : 0..<0
    }

    /// The rows that may see some key of `keys`, as a half-open range; empty when none does.
    package func rows(seeing keys: Range<Int>) -> Range<Int> {
        guard !keys.isEmpty else { return 0..<0 }
        let lo = right < 0 ? 0 : max(0, keys.lowerBound - shift - right)
        let hi = left < 0 ? seqlenQ : min(seqlenQ, keys.upperBound - 1 - shift + left + 1)
        return lo < hi ? lo..<hi : 0..<0
    }

    /// Whether every row of `rows` sees every key of `keys`, so no entry needs masking.
    package func isFullyVisible(rows: Range<Int>, keys: Range<Int>) -> Bool {
        firstKey(row: rows.upperBound - 1) <= keys.lowerBound && lastKey(row: rows.lowerBound) >= keys.upperBound - 1
    }
}
