import Distributed
import FlashAttention
import Foundation

/// The measurement behind `flashdist tune`: a few forward row blocks, and a few backward row and
/// key blocks, each timed on every shape in interleaved rounds (so a slow spell of a shared
/// machine hits every candidate alike), against the tiles fitted to the caches. The forward and
/// the backward use different sizes, so each is tuned on its own.
struct TileTrials {
    let problems: [AttentionProblem]
    let instructionSet: InstructionSet
    let caches: CacheSizes
    let threads: Int
    let rounds: Int

    /// A candidate must beat the fitted tiles by this much to be kept, and by more than the
    /// fitted tiles' own spread over the rounds (on a busy machine that spread is what a short
    /// measurement mostly shows, and the fitted tiles stay).
    static let margin = 1.03

    struct Choice {
        let tiles: TuningFile.Tiles
        /// Fitted time over chosen time (geometric mean over the shapes); 1 when fitted stays.
        let forwardGain: Double
        let backwardGain: Double
    }

    private struct Candidate {
        let name: String
        let tiling: Tiling
        /// The sizes it runs each problem with; candidates that match an earlier one are dropped.
        let resolved: [Int]
    }

    private var fitted: Tiling { .fitted(to: caches) }

    private var forwardCandidates: [Candidate] {
        unique([nil, 64, 128, 256, 512, 1024].map { rows in
            var tiling = fitted
            tiling.forwardRows = rows
            return Candidate(name: "forward rows \(rows.map(String.init) ?? "fitted")", tiling: tiling,
                             resolved: problems.map(tiling.forwardRows(for:)))
        })
    }

    private var backwardCandidates: [Candidate] {
        unique([(64, nil), (64, 64), (64, 128), (64, 256), (128, 64), (128, 128), (128, 256)].map { (rows: Int, keys: Int?) in
            var tiling = fitted
            (tiling.backwardRows, tiling.backwardKeys) = (rows, keys)
            return Candidate(name: "backward \(rows) rows × \(keys.map(String.init) ?? "fitted") keys", tiling: tiling,
                             resolved: problems.flatMap { [rows, tiling.backwardKeys(for: $0)] })
        })
    }

    private func unique(_ candidates: [Candidate]) -> [Candidate] {
        candidates.reduce(into: []) { kept, candidate in
            if !kept.contains(where: { $0.resolved == candidate.resolved }) { kept.append(candidate) }
        }
    }

    /// Times every candidate, reports each with `report`, and returns the choice.
    func run(report: (String) -> Void) throws -> Choice {
        let forward = forwardCandidates, backward = backwardCandidates
        // seconds[problem][candidate]: the timed runs, forward candidates first.
        var seconds = [[[Double]]](repeating: [[Double]](repeating: [], count: forward.count + backward.count), count: problems.count)
        for (index, problem) in problems.enumerated() {
            let shapes = TensorShapes(problem)
            let x = BenchInputs(problem, queries: [.whole(shapes.query)], keys: .whole(shapes.key))
            var o = [Float](repeating: 0, count: problem.queryElements), lse = [Float](repeating: 0, count: problem.lseElements)
            FlashAttention.forward(problem, q: x.q, k: x.k, v: x.v, o: &o, lse: &lse, threads: threads, configuration: configuration(fitted))
            var scratchO = o, scratchLSE = lse
            var dQ = [Float](repeating: 0, count: problem.queryElements), dK = [Float](repeating: 0, count: problem.keyElements), dV = dK
            for round in 0...rounds {
                for (slot, candidate) in forward.enumerated() {
                    let time = timed {
                        FlashAttention.forward(problem, q: x.q, k: x.k, v: x.v, o: &scratchO, lse: &scratchLSE, threads: threads,
                                               configuration: configuration(candidate.tiling))
                    }
                    if round > 0 { seconds[index][slot].append(time) }
                }
                for (slot, candidate) in backward.enumerated() {
                    let time = timed {
                        FlashAttention.backward(problem, q: x.q, k: x.k, v: x.v, o: o, lse: lse, dO: x.dO, dQ: &dQ, dK: &dK, dV: &dV,
                                                threads: threads, configuration: configuration(candidate.tiling))
                    }
                    if round > 0 { seconds[index][forward.count + slot].append(time) }
                }
            }
        }
        // Per candidate: fitted median over its median, geometric mean over the problems.
        let gains = (0..<forward.count + backward.count).map { slot in
            let base = slot < forward.count ? 0 : forward.count
            let logs = seconds.map { log(MachineProbe.median($0[base]) / MachineProbe.median($0[slot])) }
            return exp(logs.reduce(0, +) / Double(problems.count))
        }
        for (slot, candidate) in (forward + backward).enumerated() {
            let medians = seconds.map { String(format: "%.4f s", MachineProbe.median($0[slot])) }.joined(separator: ", ")
            report(String(format: "%@: %@ (%.3f× fitted)", candidate.name, medians, gains[slot]))
        }
        func best(_ range: Range<Int>) -> Int {
            // (slowest − fastest) / median of the fitted tiles' runs, on the shape where it is widest.
            let spread = seconds.map { runs in
                let fitted = runs[range.lowerBound]
                return (fitted.max()! - fitted.min()!) / MachineProbe.median(fitted)
            }.max()!
            let needed = max(Self.margin, 1 + spread), slot = range.max { gains[$0] < gains[$1] }!
            report(String(format: "%@: a candidate must be %.3f× the fitted tiles (their spread over the rounds: %.1f%%)",
                          range.lowerBound == 0 ? "forward" : "backward", needed, 100 * spread))
            return gains[slot] >= needed ? slot : range.lowerBound
        }
        let forwardSlot = best(0..<forward.count), backwardSlot = best(forward.count..<forward.count + backward.count)
        let backwardTiling = backward[backwardSlot - forward.count].tiling
        return Choice(tiles: TuningFile.Tiles(forwardRows: forward[forwardSlot].tiling.forwardRows, backwardRows: backwardTiling.backwardRows,
                                              backwardKeys: backwardTiling.backwardKeys),
                      forwardGain: gains[forwardSlot], backwardGain: gains[backwardSlot])
    }

    private func configuration(_ tiling: Tiling) -> KernelConfiguration {
        KernelConfiguration(instructionSet: instructionSet, tiling: tiling, tileSource: .options)
    }

    private func timed(_ body: () -> Void) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }
}
