import FlashKernelsAVX2
import FlashKernelsAVX512

/// The forward of a window of rows, the keys visited a range at a time in key order, on the
/// kernels of `configuration` (`WindowAttention` says how the work is cut). With the configuration
/// of a one-process run, its rows come out bitwise as there.
public final class WindowForward {
    private let kernel: any WindowForwardKernel

    /// Starts the rows `window` of the sequence axis, with their q `(batch, window, heads, headDim)`.
    public init(_ problem: AttentionProblem, rows window: Range<Int>, q: [Float], threads: Int,
                configuration: KernelConfiguration = .current) {
        kernel = switch configuration.instructionSet {
        case .avx2: FlashKernelsAVX2.WindowForwardPass(problem, rows: window, q: q, threads: threads, tiling: configuration.tiling)
        case .avx512: FlashKernelsAVX512.WindowForwardPass(problem, rows: window, q: q, threads: threads, tiling: configuration.tiling)
        }
    }

    /// Merges the keys held in k and v, `keys` of the sequence axis (whole blocks of
    /// `WindowAttention.keyBlocks`) `(batch, keys, kvHeads, headDim)` and `(…, valueHeadDim)`,
    /// into the rows that visit them. Called in key order.
    public func visit(keys: Range<Int>, k: UnsafePointer<Float>, v: UnsafePointer<Float>) {
        kernel.visit(keys: keys, k: k, v: v)
    }

    /// O `(batch, window, heads, valueHeadDim)`, and lse with its float32 rounding error (what
    /// `WindowBackward` takes back) `(batch, heads, window)`, once every key has been visited.
    public func finish() -> (o: [Float], lse: [Float], lseResidual: [Float]) { kernel.finish() }
}

/// The backward of a window of rows, the key blocks visited in key order, on the kernels of
/// `configuration`. With the configuration of a one-process run, its sums are bitwise those there.
public final class WindowBackward {
    private let kernel: any WindowBackwardKernel

    /// The rows `window` with their q `(batch, window, heads, headDim)`, o, dO `(…, valueHeadDim)`
    /// and lse `(batch, heads, window)`, with lse's residual (nil: zeros) as `WindowForward` gives it.
    public init(_ problem: AttentionProblem, rows window: Range<Int>, q: [Float], o: [Float], lse: [Float],
                lseResidual: [Float]? = nil, dO: [Float], threads: Int, configuration: KernelConfiguration = .current) {
        let residual = lseResidual ?? [Float](repeating: 0, count: lse.count)
        kernel = switch configuration.instructionSet {
        case .avx2: FlashKernelsAVX2.WindowBackwardPass(problem, rows: window, q: q, o: o, lse: lse, lseResidual: residual, dO: dO,
                                                        threads: threads, tiling: configuration.tiling)
        case .avx512: FlashKernelsAVX512.WindowBackwardPass(problem, rows: window, q: q, o: o, lse: lse, lseResidual: residual, dO: dO,
                                                            threads: threads, tiling: configuration.tiling)
        }
    }

    /// Adds this window's rows to the per-head dK and dV sums of `keys` (whole blocks of
    /// `WindowAttention.keyBlocks`, laid out as `WindowAttention.partialFloats` says; zeros for the
    /// first rows), and their dS·K to their dQ. k and v hold the keys, `(batch, keys, kvHeads, headDim)`
    /// and `(…, valueHeadDim)`.
    public func accumulate(keys: Range<Int>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, partials: UnsafeMutablePointer<Float>) {
        kernel.accumulate(keys: keys, k: k, v: v, partials: partials)
    }

    /// dQ `(batch, window, heads, headDim)` once every key block has been visited.
    public func finish() -> [Float] { kernel.finish() }
}
