import ArgumentParser
import AttentionReference
import FlashAttention
import Foundation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time forward (and backward) on random data: median time, GFLOP/s, share of the FMA peak, peak RSS.")

    @Option var batch = 1
    @Option var heads = 8
    @Option(help: "kv heads (default: heads); heads must be a multiple.") var kvHeads: Int?
    @Option var seqlenQ = 2048
    @Option(help: "Key length (default: seqlen-q).") var seqlenK: Int?
    @Option var headDim = 64
    @OptionGroup var mask: MaskOptions
    @OptionGroup var threads: ThreadOptions
    @Option(help: "Untimed runs before the timed ones.") var warmup = 1
    @Option(help: "Timed runs; the median is reported.") var repeats = 5
    @Flag(help: "Also time the backward.") var backward = false
    @Flag(help: "Check sampled rows against a float64 reference and print the max abs errors.") var verify = false
    @Flag(help: "Print one JSON line (keys as ../shared/peers/torch_sdpa.py) instead of text.") var json = false

    func run() throws {
        let problem = try AttentionProblem(batch: batch, seqlenQ: seqlenQ, seqlenK: seqlenK ?? seqlenQ, heads: heads,
                                           kvHeads: kvHeads ?? heads, headDim: headDim,
                                           options: mask.attentionOptions(headDim: headDim))
        let workers = threads.count
        var normals = SeededNormals(seed: 2026)
        let q = normals.next(problem.queryElements), k = normals.next(problem.keyElements)
        let v = normals.next(problem.keyElements), dO = normals.next(problem.queryElements)

        // Outputs are allocated once and rewritten by every run, so peak RSS counts the tensors once.
        var o = [Float](repeating: 0, count: problem.queryElements)
        var lse = [Float](repeating: 0, count: problem.lseElements)
        let forwardSeconds = MachineProbe.medianSeconds(warmup: warmup, repeats: repeats) {
            FlashAttention.forward(problem, q: q, k: k, v: v, o: &o, lse: &lse, threads: workers)
        }
        var dQ = [Float](repeating: 0, count: backward ? problem.queryElements : 0)
        var dK = [Float](repeating: 0, count: backward ? problem.keyElements : 0), dV = dK
        let backwardSeconds = backward ? MachineProbe.medianSeconds(warmup: warmup, repeats: repeats) {
            FlashAttention.backward(problem, q: q, k: k, v: v, o: o, lse: lse, dO: dO,
                                    dQ: &dQ, dK: &dK, dV: &dV, threads: workers)
        } : nil
        let grads = backward ? (dQ: dQ, dK: dK, dV: dV) : nil
        let peak = MachineProbe.fmaPeakGFLOPS(threads: workers)
        let rss = MachineProbe.peakResidentBytes()

        let flops = problem.forwardFlops
        var record: [(String, Any)] = [
            ("impl", "flashdist"), ("threads", workers), ("batch", batch), ("heads", heads),
            ("kv_heads", problem.kvHeads), ("seqlen_q", seqlenQ), ("seqlen_k", seqlenK ?? seqlenQ),
            ("head_dim", headDim), ("causal", mask.causal),
            ("window", [mask.window?.left ?? -1, mask.window?.right ?? -1]),
            ("fwd_s", forwardSeconds), ("fwd_gflops", flops / forwardSeconds / 1e9),
        ]
        if let backwardSeconds {
            record += [("bwd_s", backwardSeconds), ("bwd_gflops", 2.5 * flops / backwardSeconds / 1e9)]
        }
        record += [("peak_gflops", peak), ("peak_rss_bytes", rss)]
        if verify {
            let errors = SampledCheck(problem: problem, q: q, k: k, v: v, dO: dO).maxErrors(o: o, lse: lse, grads: grads)
            record += errors.map { ("max_abs_err_\($0.name)", $0.error) }
        }
        print(json ? jsonLine(record) : report(record, peak: peak))
    }

    private func jsonLine(_ record: [(String, Any)]) -> String {
        let body = record.map { key, value -> String in
            let text: String
            switch value {
            case let s as String: text = "\"\(s)\""
            case let list as [Int]: text = "[" + list.map(String.init).joined(separator: ", ") + "]"
            default: text = "\(value)"
            }
            return "\"\(key)\": \(text)"
        }
        return "{" + body.joined(separator: ", ") + "}"
    }

    private func report(_ record: [(String, Any)], peak: Double) -> String {
        let values = Dictionary(record, uniquingKeysWith: { a, _ in a })
        var lines = ["flashdist bench: batch \(batch), heads \(heads)/\(values["kv_heads"]!) kv, seqlen \(seqlenQ)x\(seqlenK ?? seqlenQ), head dim \(headDim)"
                     + (mask.causal ? ", causal" : "") + (mask.window.map { ", window (\($0.left), \($0.right))" } ?? "")
                     + ", \(values["threads"]!) threads"]
        for phase in ["fwd", "bwd"] {
            guard let seconds = values["\(phase)_s"] as? Double, let gflops = values["\(phase)_gflops"] as? Double else { continue }
            lines.append(String(format: "  %@  %9.4f s  %8.1f GFLOP/s  %5.1f%% of FMA peak", phase, seconds, gflops, 100 * gflops / peak))
        }
        lines.append(String(format: "  FMA peak %.1f GFLOP/s, peak RSS %.1f MiB", peak, Double(values["peak_rss_bytes"] as! Int) / 1_048_576))
        for (key, value) in record where key.hasPrefix("max_abs_err_") {
            lines.append(String(format: "  max |error| vs float64 reference, %@: %.3e", String(key.dropFirst(12)), value as! Double))
        }
        return lines.joined(separator: "\n")
    }
}

/// Compares sampled rows of a run with the float64 reference: o, lse and dq on up to 16 rows of
/// the first and last head, and dk, dv of the first kv head when the problem is small enough for
/// the reference to compute a whole head quickly.
struct SampledCheck {
    let problem: AttentionProblem
    let q: [Float], k: [Float], v: [Float], dO: [Float]

    func maxErrors(o: [Float], lse: [Float], grads: (dQ: [Float], dK: [Float], dV: [Float])?) -> [(name: String, error: Double)] {
        let (b, nq, nk, d) = (problem.batch, problem.totalQueries / problem.batch, problem.totalKeys / problem.batch, problem.headDim)
        let reference = ReferenceAttention(q: q, k: k, v: v, batch: b, seqlenQ: nq, seqlenK: nk, heads: problem.heads,
                                           kvHeads: problem.kvHeads, headDim: d, scale: Double(problem.options.softmaxScale),
                                           causal: problem.options.causal, windowLeft: problem.options.windowLeft,
                                           windowRight: problem.options.windowRight)
        var errors = ["o": 0.0, "lse": 0.0, "dq": 0.0]
        let rows = (0..<min(16, nq)).map { $0 * nq / min(16, nq) }
        for (batch, head) in [(0, 0), (b - 1, problem.heads - 1)] {
            for i in rows {
                let row = reference.forwardRow(batch: batch, head: head, row: i)
                let base = ((batch * nq + i) * problem.heads + head) * d
                errors["o"] = max(errors["o"]!, maxDifference(row.o, o[base..<base + d]))
                errors["lse"] = max(errors["lse"]!, difference(row.lse, lse[(batch * problem.heads + head) * nq + i]))
                if let grads {
                    let dq = reference.queryGradientRow(batch: batch, head: head, row: i, dO: dO)
                    errors["dq"] = max(errors["dq"]!, maxDifference(dq, grads.dQ[base..<base + d]))
                }
            }
        }
        var result = [("o", errors["o"]!), ("lse", errors["lse"]!)]
        guard let grads else { return result }
        result.append(("dq", errors["dq"]!))
        if Double(nq) * Double(nk) * Double(problem.groupSize) <= 4096 * 4096 {
            var dK = [Double](repeating: 0, count: nk * d), dV = dK
            for h in 0..<problem.groupSize {
                let head = reference.backwardHead(batch: 0, head: h, dO: dO)
                for x in 0..<nk * d { dK[x] += head.dK[x]; dV[x] += head.dV[x] }
            }
            var dkError = 0.0, dvError = 0.0
            for j in 0..<nk {
                let base = j * problem.kvHeads * d
                dkError = max(dkError, maxDifference(Array(dK[j * d..<(j + 1) * d]), grads.dK[base..<base + d]))
                dvError = max(dvError, maxDifference(Array(dV[j * d..<(j + 1) * d]), grads.dV[base..<base + d]))
            }
            result += [("dk", dkError), ("dv", dvError)]
        }
        return result
    }

    private func maxDifference(_ reference: [Double], _ values: ArraySlice<Float>) -> Double {
        zip(reference, values).reduce(0) { max($0, difference($1.0, $1.1)) }
    }

    /// |reference − value|, 0 where both are the same infinity, ∞ where only one is finite.
    private func difference(_ reference: Double, _ value: Float) -> Double {
        if reference == Double(value) { return 0 }
        return reference.isFinite && value.isFinite ? abs(reference - Double(value)) : .infinity
    }
}
