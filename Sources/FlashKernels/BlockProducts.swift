import CPrefetch
import FlashAttentionCore

/// The matrix products of a tile, register-blocked for SIMD (Packing.swift lays out their operands).
///
/// Every product here is `C (m×n) (+)= A (m×k) · B (k×n)` with C row-major and n a multiple of 16
/// (the packed layouts are zero-padded to that). B is read a panel of 16 columns at a time: its
/// rows are `bRowStride` apart and its panels `bPanelStride` apart, so one kernel reads B row-major
/// (panels 16 floats apart) or as the transposed copies of Packing.swift lay it out (rows 16
/// floats apart, panels a whole panel apart). A is read through two strides, so one kernel
/// serves both A and Aᵀ: the backward's Pᵀ·dO and dSᵀ·Q read P and dS column by column without a
/// transposed copy; the forward reads Pᵀ down the columns of Sᵀ.
///
/// B's panels are the outer loop and A's rows the inner one, as in BLIS: a panel of B (k × 16
/// floats, 4–16 KiB) stays in L1 while every row of A meets it, so A streams from L2 once per
/// panel. Rows outermost would stream the whole of B once per six rows instead.
///
/// Six rows of C times sixteen columns live in registers while k runs: twelve ymm accumulators
/// (enough independent FMA chains to cover the latency of two FMA pipes), two for the B vector
/// and one for the broadcast A element, fifteen of AVX2's sixteen. Each loaded B vector feeds six
/// FMAs. With AVX-512 the same sixteen columns are six zmm chains, and a core that starts two zmm
/// FMAs a cycle with a latency of four (Zen 5, Intel Xeon since Skylake-SP) needs eight: six
/// would hold the products to 75% of its peak (llvm-mca, skylake-avx512: 6 FMAs per 4.0
/// cycles). So there two panels go together, six rows × 32 columns in twelve of the 32 zmm
/// registers, each broadcast A element feeding two FMAs (`TwoPanels`); on a Zen 4, which starts one
/// zmm FMA a cycle, both shapes run at the same speed. Leftover rows go four at a time (eight as
/// two fours rather than six and two single rows, whose one chain each waits on the FMA latency),
/// then one. The variants are unrolled by hand because Swift keeps named SIMD values in registers
/// but not an array of them.
///
/// One of A's strides is always 1 (A's rows, or its columns, are contiguous), and each case is its
/// own specialisation. With columns contiguous, a group's rows are fixed offsets from one moving
/// pointer. With rows contiguous, the rows' starts are laid out in a table that the optimiser
/// cannot see through (`flashdist_opaque`, once per product): knowing them a stride apart, it
/// would address five of six from the first, a few integer operations a step that AVX2's step of
/// twelve FMAs, two loads and six broadcasts cannot spare (it is already near what the core issues
/// in the six cycles the FMAs take); from the table it keeps six registers and one shared index.
func multiply(m: Int, n: Int, k: Int,
              a: UnsafePointer<Float>, aRowStride: Int, aColumnStride: Int,
              b: UnsafePointer<Float>, bRowStride: Int, bPanelStride: Int = lanes,
              c: UnsafeMutablePointer<Float>, cRowStride: Int, accumulate: Bool) {
    precondition(aColumnStride == 1 || aRowStride == 1, "multiply: one of A's strides must be 1")
    func panels<Rows: RowsOfA>(_ rows: Rows) {
        var column = 0
        #if FLASHDIST_AVX512
        while column + 2 * lanes <= n {
            multiplyPanels(TwoPanels.self, m: m, k: k, a: rows, b: b + column / lanes * bPanelStride, bRowStride: bRowStride,
                           bPanelStride: bPanelStride, c: c + column, cRowStride: cRowStride, accumulate: accumulate)
            column += 2 * lanes
        }
        #endif
        while column < n {
            multiplyPanels(OnePanel.self, m: m, k: k, a: rows, b: b + column / lanes * bPanelStride, bRowStride: bRowStride,
                           bPanelStride: bPanelStride, c: c + column, cRowStride: cRowStride, accumulate: accumulate)
            column += lanes
        }
    }
    if aColumnStride == 1 {
        withUnsafeTemporaryAllocation(of: UnsafePointer<Float>.self, capacity: max(1, m)) { table in
            for row in 0..<m { table[row] = a + row * aRowStride }
            flashdist_opaque(table.baseAddress)
            panels(ContiguousRows(starts: UnsafePointer(table.baseAddress!)))
        }
    } else {
        panels(ContiguousColumns(first: a, columnStride: aColumnStride))
    }
}

/// Where A's rows start, and how far apart consecutive elements of a row are.
private protocol RowsOfA {
    var columnStride: Int { get }
    func row(_ index: Int) -> UnsafePointer<Float>
}

private struct ContiguousRows: RowsOfA {
    let starts: UnsafePointer<UnsafePointer<Float>>
    var columnStride: Int { 1 }
    func row(_ index: Int) -> UnsafePointer<Float> { starts[index] }
}

private struct ContiguousColumns: RowsOfA {
    let first: UnsafePointer<Float>
    let columnStride: Int
    func row(_ index: Int) -> UnsafePointer<Float> { first + index }
}

/// C (m × 16g) (+)= A (m × k) · g panels of B (k × 16g), g the panels of a `Group`.
private func multiplyPanels<Rows: RowsOfA, Group: PanelGroup>(
    _: Group.Type, m: Int, k: Int, a: Rows, b: UnsafePointer<Float>, bRowStride: Int, bPanelStride: Int,
    c: UnsafeMutablePointer<Float>, cRowStride: Int, accumulate: Bool
) {
    let aColumnStride = a.columnStride
    var row = 0
    while row + 6 <= m && m - row != 8 {
        let (a0, a1, a2, a3, a4, a5) = (a.row(row), a.row(row + 1), a.row(row + 2), a.row(row + 3), a.row(row + 4), a.row(row + 5))
        let c0 = c + row * cRowStride, c1 = c0 + cRowStride, c2 = c1 + cRowStride
        let c3 = c2 + cRowStride, c4 = c3 + cRowStride, c5 = c4 + cRowStride
        var s0: Group = accumulate ? .load(c0) : .zero
        var s1: Group = accumulate ? .load(c1) : .zero
        var s2: Group = accumulate ? .load(c2) : .zero
        var s3: Group = accumulate ? .load(c3) : .zero
        var s4: Group = accumulate ? .load(c4) : .zero
        var s5: Group = accumulate ? .load(c5) : .zero
        var bp = b, ai = 0
        for _ in 0..<k {
            let bv = Group.load(bp, panelStride: bPanelStride)
            s0 = s0.addingProduct(a0[ai], bv)
            s1 = s1.addingProduct(a1[ai], bv)
            s2 = s2.addingProduct(a2[ai], bv)
            s3 = s3.addingProduct(a3[ai], bv)
            s4 = s4.addingProduct(a4[ai], bv)
            s5 = s5.addingProduct(a5[ai], bv)
            bp += bRowStride
            ai += aColumnStride
        }
        s0.store(c0); s1.store(c1); s2.store(c2)
        s3.store(c3); s4.store(c4); s5.store(c5)
        row += 6
    }
    while row + 4 <= m {
        let (a0, a1, a2, a3) = (a.row(row), a.row(row + 1), a.row(row + 2), a.row(row + 3))
        let c0 = c + row * cRowStride, c1 = c0 + cRowStride, c2 = c1 + cRowStride, c3 = c2 + cRowStride
        var s0: Group = accumulate ? .load(c0) : .zero
        var s1: Group = accumulate ? .load(c1) : .zero
        var s2: Group = accumulate ? .load(c2) : .zero
        var s3: Group = accumulate ? .load(c3) : .zero
        var bp = b, ai = 0
        for _ in 0..<k {
            let bv = Group.load(bp, panelStride: bPanelStride)
            s0 = s0.addingProduct(a0[ai], bv)
            s1 = s1.addingProduct(a1[ai], bv)
            s2 = s2.addingProduct(a2[ai], bv)
            s3 = s3.addingProduct(a3[ai], bv)
            bp += bRowStride
            ai += aColumnStride
        }
        s0.store(c0); s1.store(c1); s2.store(c2); s3.store(c3)
        row += 4
    }
    while row < m {
        let a0 = a.row(row), c0 = c + row * cRowStride
        var s0: Group = accumulate ? .load(c0) : .zero
        var bp = b, ai = 0
        for _ in 0..<k {
            s0 = s0.addingProduct(a0[ai], Group.load(bp, panelStride: bPanelStride))
            bp += bRowStride
            ai += aColumnStride
        }
        s0.store(c0)
        row += 1
    }
}

/// The panels of B that one pass of `multiplyPanels` takes at once: one row of them, as loaded
/// from B (panels `panelStride` apart) or from C (side by side).
private protocol PanelGroup {
    static var zero: Self { get }
    static func load(_ c: UnsafePointer<Float>) -> Self
    static func load(_ b: UnsafePointer<Float>, panelStride: Int) -> Self
    func addingProduct(_ a: Float, _ b: Self) -> Self
    func store(_ c: UnsafeMutablePointer<Float>)
}

private struct OnePanel: PanelGroup {
    var columns: Lanes
    static var zero: Self { Self(columns: .zero) }
    @inline(__always) static func load(_ c: UnsafePointer<Float>) -> Self { Self(columns: .load(c)) }
    @inline(__always) static func load(_ b: UnsafePointer<Float>, panelStride: Int) -> Self { Self(columns: .load(b)) }
    @inline(__always) func addingProduct(_ a: Float, _ b: Self) -> Self {
        Self(columns: columns.addingProduct(Lanes(repeating: a), b.columns))
    }
    @inline(__always) func store(_ c: UnsafeMutablePointer<Float>) { columns.store(c) }
}

#if FLASHDIST_AVX512
private struct TwoPanels: PanelGroup {
    var left, right: Lanes
    static var zero: Self { Self(left: .zero, right: .zero) }
    @inline(__always) static func load(_ c: UnsafePointer<Float>) -> Self { Self(left: .load(c), right: .load(c + lanes)) }
    @inline(__always) static func load(_ b: UnsafePointer<Float>, panelStride: Int) -> Self {
        Self(left: .load(b), right: .load(b + panelStride))
    }
    @inline(__always) func addingProduct(_ a: Float, _ b: Self) -> Self {
        let a = Lanes(repeating: a)
        return Self(left: left.addingProduct(a, b.left), right: right.addingProduct(a, b.right))
    }
    @inline(__always) func store(_ c: UnsafeMutablePointer<Float>) {
        left.store(c)
        right.store(c + lanes)
    }
}
#endif
