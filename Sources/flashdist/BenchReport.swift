import FlashAttention
import Foundation

/// A bench result with its configuration and the machine it ran on: the row `--record` appends,
/// the `--json` line, and the text report.
struct BenchReport {
    static let version = "0.5.0"

    /// The record's columns, in order. A CSV file's header is exactly these.
    static let columns = [
        "date", "version", "impl", "experiment", "cpu", "cores", "target_cpu", "hosts", "hostnames",
        "ranks", "threads", "partition", "batch", "heads", "kv_heads", "seqlen_q", "seqlen_k", "head_dim",
        "head_dim_v", "causal", "window_left", "window_right", "warmup", "repeats",
        "fwd_s", "fwd_gflops", "fwd_peak_fraction", "bwd_s", "bwd_gflops", "bwd_peak_fraction",
        "peak_gflops", "peak_rss_bytes", "tensor_bytes", "scores_bytes", "comm_bytes", "comm_s",
        "rank_fwd_s", "rank_bwd_s", "rank_rss_bytes", "rank_sent_bytes", "rank_comm_s",
    ]

    let problem: AttentionProblem
    let measurement: BenchMeasurement
    let threads: Int
    /// nil without mpirun.
    let partition: Partition?
    let algorithm: Algorithm
    let experiment: String
    let warmup: Int
    let repeats: Int

    private var ranks: [RankResult] { measurement.ranks }
    private var peakGFLOPS: Double { ranks.reduce(0) { $0 + $1.peakGFLOPS } }
    private var backwardFlops: Double { 2.5 * problem.forwardFlops }

    var record: Record {
        let (batch, options) = (problem.batch, problem.options)
        let (forward, backward) = (measurement.forwardSeconds, measurement.backwardSeconds)
        let hosts = ranks.map(\.host).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        // q, k, v, o and lse; with the backward also dO, dQ, dK, dV.
        let tensors = 4 * ((problem.queryElements + problem.keyElements + problem.valueElements + problem.outputElements)
                           * (backward == nil ? 1 : 2) + problem.lseElements)
        let values: [String: RecordValue] = [
            "date": .text(ISO8601DateFormatter().string(from: Date())), "version": .text(Self.version),
            "impl": .text(algorithm.impl), "experiment": .text(experiment), "cpu": .text(MachineProbe.cpuModel()),
            "cores": .integer(ProcessInfo.processInfo.activeProcessorCount), "target_cpu": .text(MachineProbe.targetCPU()),
            "hosts": .integer(hosts.count), "hostnames": .list(hosts.map(RecordValue.text)),
            "ranks": .integer(ranks.count), "threads": .integer(threads), "partition": .text(partition?.rawValue ?? "none"),
            "batch": .integer(batch), "heads": .integer(problem.heads), "kv_heads": .integer(problem.kvHeads),
            "seqlen_q": .integer(problem.totalQueries / batch), "seqlen_k": .integer(problem.totalKeys / batch),
            "head_dim": .integer(problem.headDim), "head_dim_v": .integer(problem.valueHeadDim), "causal": .flag(options.causal),
            "window_left": .integer(options.windowLeft), "window_right": .integer(options.windowRight),
            "warmup": .integer(warmup), "repeats": .integer(repeats),
            "fwd_s": .real(forward), "fwd_gflops": .real(problem.forwardFlops / forward / 1e9),
            "fwd_peak_fraction": .real(problem.forwardFlops / forward / 1e9 / peakGFLOPS),
            "bwd_s": backward.map(RecordValue.real) ?? .missing,
            "bwd_gflops": backward.map { .real(backwardFlops / $0 / 1e9) } ?? .missing,
            "bwd_peak_fraction": backward.map { .real(backwardFlops / $0 / 1e9 / peakGFLOPS) } ?? .missing,
            "peak_gflops": .real(peakGFLOPS), "peak_rss_bytes": .integer(ranks.map(\.residentBytes).max()!),
            "tensor_bytes": .integer(tensors), "scores_bytes": .integer(4 * problem.lseElements * problem.totalKeys / batch),
            "comm_bytes": .integer(Int(ranks.reduce(0) { $0 + $1.bytesSent })),
            "comm_s": .real(ranks.map(\.transferSeconds).max()!),
            "rank_fwd_s": .list(ranks.map { .real($0.forwardSeconds) }),
            "rank_bwd_s": .list(ranks.map { $0.backwardSeconds.map(RecordValue.real) ?? .missing }),
            "rank_rss_bytes": .list(ranks.map { .integer($0.residentBytes) }),
            "rank_sent_bytes": .list(ranks.map { .integer(Int($0.bytesSent)) }),
            "rank_comm_s": .list(ranks.map { .real($0.transferSeconds) }),
        ]
        assert(Set(values.keys) == Set(Self.columns), "every column has a value")
        return Self.columns.map { ($0, values[$0]!) }
    }

    /// The record and the `--verify` errors as one JSON object.
    var jsonLine: String {
        RecordFile.jsonObject(record + measurement.errors.map { ("max_abs_err_\($0.name)", RecordValue.real($0.error)) })
    }

    var text: String {
        let options = problem.options, batch = problem.batch
        let (nq, nk) = (problem.totalQueries / batch, problem.totalKeys / batch)
        var layout = "\(threads) threads"
        if let partition { layout = "\(ranks.count) ranks × \(layout), partition \(partition.rawValue)" }
        var lines = ["flashdist bench\(algorithm == .standard ? " (standard attention)" : ""): batch \(batch), heads \(problem.heads)/\(problem.kvHeads) kv, seqlen \(nq)x\(nk), head dim \(problem.headDim)"
                     + (problem.valueHeadDim == problem.headDim ? "" : " (v \(problem.valueHeadDim))")
                     + (options.causal ? ", causal" : "")
                     + (options.windowLeft >= 0 || options.windowRight >= 0 ? ", window (\(options.windowLeft), \(options.windowRight))" : "")
                     + (options.sinks.map { $0.allSatisfy { $0 == 0 } ? ", zero sinks" : ", random sinks" } ?? "")
                     + ", \(layout)",
                     "  \(MachineProbe.kernelPath())", "  \(MachineProbe.tiles(for: problem))"]
        let phases = [("fwd", measurement.forwardSeconds, problem.forwardFlops)]
            + (measurement.backwardSeconds.map { [("bwd", $0, backwardFlops)] } ?? [])
        for (phase, seconds, flops) in phases {
            let gflops = flops / seconds / 1e9
            lines.append(String(format: "  %@  %9.4f s  %8.1f GFLOP/s  %5.1f%% of FMA peak", phase, seconds, gflops, 100 * gflops / peakGFLOPS))
        }
        lines.append(String(format: "  FMA peak %.1f GFLOP/s, peak RSS %.1f MiB", peakGFLOPS, Double(ranks.map(\.residentBytes).max()!) / 1_048_576)
                     + (partition == nil ? "" : " (largest rank)"))
        if partition != nil {
            for (rank, result) in ranks.enumerated() {
                lines.append(String(format: "  rank %d on %@: fwd %.4f s, bwd %@, peak RSS %.1f MiB, sent %.0f B and %.4f s in transfers per run",
                                    rank, result.host, result.forwardSeconds, result.backwardSeconds.map { String(format: "%.4f s", $0) } ?? "-",
                                    Double(result.residentBytes) / 1_048_576, result.bytesSent, result.transferSeconds))
            }
        }
        for (name, error) in measurement.errors {
            lines.append(String(format: "  max |error| vs float64 reference, %@: %.3e", name, error))
        }
        return lines.joined(separator: "\n")
    }
}
