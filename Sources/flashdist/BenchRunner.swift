import Distributed
import FlashAttention
import Foundation

/// What one rank measured: its median times, FMA peak, peak RSS, and per forward (+ backward)
/// run the bytes it sent to other ranks and its time in transfers.
struct RankResult {
    let forwardSeconds: Double
    let backwardSeconds: Double?
    let peakGFLOPS: Double
    let residentBytes: Int
    let bytesSent: Double
    let transferSeconds: Double
    let host: String
}

/// A bench result: per timed run the slowest rank's time (the job is as fast as its last rank),
/// the median over runs, and every rank's own figures.
struct BenchMeasurement {
    let forwardSeconds: Double
    let backwardSeconds: Double?
    let ranks: [RankResult]
    /// Max abs errors against the float64 reference (`--verify`, threaded runs only).
    let errors: [(name: String, error: Double)]
}

/// Times forward and backward on every rank of `communicator`: the threaded kernels on the whole
/// problem without mpirun, and a partition of it through the Distributed API under mpirun. Each
/// run starts on all ranks together and ends by sharing its time, so no rank starts the next run
/// while another is still in this one.
struct BenchRunner {
    let problem: AttentionProblem
    let algorithm: Algorithm
    let communicator: Communicator
    let threads: Int
    let warmup: Int
    let repeats: Int
    let backward: Bool
    /// The FMA peak per rank to report instead of measuring it (runs under a cache simulator).
    let givenPeak: Double?
    let progress: BenchProgress?

    private struct PhaseTimes {
        var mine: [Double] = []
        var slowest: [Double] = []
    }

    /// One process, all of q, k, v: the kernels write into outputs allocated once, so peak RSS
    /// counts every tensor once.
    func threaded(verify: Bool) throws -> BenchMeasurement {
        progress?.started("drawing inputs")
        let shapes = TensorShapes(problem)
        let inputs = BenchInputs(problem, queries: [.whole(shapes.query)], keys: .whole(shapes.key))
        var o = [Float](repeating: 0, count: problem.outputElements)
        var lse = [Float](repeating: 0, count: problem.lseElements), lseResidual = lse
        // The standard algorithm's stored P, allocated (and touched) once like the outputs.
        var p = [Float](repeating: 0, count: algorithm == .standard ? StandardAttention.probabilityElements(problem) : 0)
        let forward = try time("forward") {
            switch algorithm {
            case .flash:
                // With lse's residual, as `flashdist attention` runs it.
                lseResidual.withUnsafeMutableBufferPointer { residual in
                    FlashAttention.forward(problem, q: inputs.q, k: inputs.k, v: inputs.v, o: &o, lse: &lse, lseResidual: residual,
                                           threads: threads)
                }
            case .standard:
                StandardAttention.forward(problem, q: inputs.q, k: inputs.k, v: inputs.v, o: &o, lse: &lse, p: &p, threads: threads)
            }
        }
        var dQ = [Float](repeating: 0, count: backward ? problem.queryElements : 0)
        var dK = [Float](repeating: 0, count: backward ? problem.keyElements : 0)
        var dV = [Float](repeating: 0, count: backward ? problem.valueElements : 0)
        let backwardTimes = backward ? try time("backward") {
            switch algorithm {
            case .flash:
                FlashAttention.backward(problem, q: inputs.q, k: inputs.k, v: inputs.v, o: o, lse: lse, lseResidual: lseResidual,
                                        dO: inputs.dO, dQ: &dQ, dK: &dK, dV: &dV, threads: threads)
            case .standard:
                StandardAttention.backward(problem, q: inputs.q, k: inputs.k, v: inputs.v, o: o, dO: inputs.dO, p: p,
                                           dQ: &dQ, dK: &dK, dV: &dV, threads: threads)
            }
        } : nil
        let errors = verify ? SampledCheck(problem: problem, q: inputs.q, k: inputs.k, v: inputs.v, dO: inputs.dO)
            .maxErrors(o: o, lse: lse, grads: backward ? (dQ: dQ, dK: dK, dV: dV) : nil) : []
        return try gather(forward: forward, backward: backwardTimes, trafficBefore: communicator.traffic, errors: errors)
    }

    /// This rank's part of the problem as `partition` spreads it over the ranks.
    func distributed(_ partition: Partition, ulysses: Int?) throws -> BenchMeasurement {
        let parts = try communicator.agree { try partition.attention(problem, on: communicator, threads: threads, ulysses: ulysses) }
        progress?.started("drawing inputs")
        let inputs = BenchInputs(problem, queries: parts.queries, keys: parts.keys)
        let trafficBefore = communicator.traffic
        var saved: SavedForward?
        let forward = try time("forward") { saved = try parts.forward(q: inputs.q, k: inputs.k, v: inputs.v).saved }
        let backwardTimes = backward ? try time("backward") { _ = try parts.backward(saved!, dO: inputs.dO) } : nil
        return try gather(forward: forward, backward: backwardTimes, trafficBefore: trafficBefore, errors: [])
    }

    private func time(_ phase: String, _ body: () throws -> Void) throws -> PhaseTimes {
        progress?.started(phase)
        _ = try communicator.allgather([0.0])
        var times = PhaseTimes()
        for run in 0..<warmup + repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            // Sharing the time is also the barrier before the next run.
            let slowest = try communicator.allgather([seconds]).max()!
            progress?.finished(phase, run: run + 1, seconds: slowest)
            if run >= warmup {
                times.mine.append(seconds)
                times.slowest.append(slowest)
            }
        }
        return times
    }

    /// Every rank's figures, on every rank. The FMA peak is measured by all ranks at once, as
    /// they share the machine's cores during the runs too.
    private func gather(forward: PhaseTimes, backward: PhaseTimes?, trafficBefore: Traffic,
                        errors: [(name: String, error: Double)]) throws -> BenchMeasurement {
        progress?.started("measuring the FMA peak")
        _ = try communicator.allgather([0.0])
        let peak = givenPeak ?? FlashAttention.fmaPeakGFLOPS(threads: threads)
        let traffic = communicator.traffic, runs = Double(warmup + repeats)
        let mine = [MachineProbe.median(forward.mine), backward.map { MachineProbe.median($0.mine) } ?? .nan, peak,
                    Double(MachineProbe.peakResidentBytes()), Double(traffic.bytesSent - trafficBefore.bytesSent) / runs,
                    (traffic.seconds - trafficBefore.seconds) / runs]
        let all = try communicator.allgather(mine)
        let hosts = try gatherHostNames()
        let ranks = (0..<communicator.size).map { rank in
            let row = all[rank * mine.count..<(rank + 1) * mine.count].map { $0 }
            return RankResult(forwardSeconds: row[0], backwardSeconds: row[1].isNaN ? nil : row[1], peakGFLOPS: row[2],
                              residentBytes: Int(row[3]), bytesSent: row[4], transferSeconds: row[5], host: hosts[rank])
        }
        progress?.done()
        return BenchMeasurement(forwardSeconds: MachineProbe.median(forward.slowest),
                                backwardSeconds: backward.map { MachineProbe.median($0.slowest) },
                                ranks: ranks, errors: errors)
    }

    /// Each rank's host name, in rank order; names are cut at 255 bytes to gather them in equal parts.
    private func gatherHostNames() throws -> [String] {
        let width = 256
        var mine = Array(MachineProbe.hostName().utf8.prefix(width - 1))
        mine += [UInt8](repeating: 0, count: width - mine.count)
        let all = try communicator.allgather(mine)
        return (0..<communicator.size).map { rank in
            String(decoding: all[rank * width..<(rank + 1) * width].prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
