import Foundation
import ArgumentParser
import FlashAttention
import TensorIO
import TensorSlices

/// `--save-dropout-mask`: the output `dropout_mask`, the keep factors the kernels applied, `(batch, heads, seqlen_q,
/// seqlen_k)`, regenerated from the seed as the kernels do. Only for problems small enough that
/// the whole mask is reasonable to write.
enum DropoutMaskOutput {
    static let name = "dropout_mask"
    /// 2^26 factors: 256 MiB of float32.
    static let limit = 1 << 26

    static func shape(_ layout: AttentionLayout) -> [Int] {
        [layout.problem.batch, layout.problem.heads, layout.qShape[1], layout.kShape[1]]
    }

    /// Refuses masks above `limit` before any compute.
    static func check(_ layout: AttentionLayout) throws {
        let count = shape(layout).reduce(1.0) { $0 * Double($1) }
        guard count <= Double(limit) else {
            throw ValidationError("--save-dropout-mask: the mask \(shapeText(shape(layout))) has \(String(format: "%.0f", count)) values, above the limit of \(limit)")
        }
    }

    /// The factors of `heads` (global query heads) and query `rows` of every batch entry, in C
    /// order of that slice of the mask.
    static func values(_ problem: AttentionProblem, heads: Range<Int>, rows: Range<Int>? = nil) -> [Float] {
        (0..<problem.batch).flatMap { b in
            heads.flatMap { h in
                let factors = FlashAttention.dropoutKeepFactors(problem, batch: b, head: h)
                guard let rows, !factors.isEmpty else { return factors }
                let width = factors.count / (problem.totalQueries / problem.batch)
                return Array(factors[rows.lowerBound * width..<rows.upperBound * width])
            }
        }
    }
}
