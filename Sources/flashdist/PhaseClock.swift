import Distributed
import Foundation

/// Wall time per phase of a run, with the bytes each phase sent and the time it waited in
/// transfers, and `--stats`: every rank's figures, printed by rank 0.
struct PhaseClock {
    enum Phase: String, CaseIterable {
        case read, forward, backward, write
    }

    let communicator: Communicator
    private var seconds: [Phase: Double] = [:]
    /// CPU time of the phase less the CPU time MPI spent polling in its waits: the work done.
    private var busy: [Phase: Double] = [:]
    private var sent: [Phase: Int64] = [:]

    init(_ communicator: Communicator) { self.communicator = communicator }

    mutating func time<T>(_ phase: Phase, _ body: () throws -> T) rethrows -> T {
        let start = DispatchTime.now().uptimeNanoseconds, before = communicator.traffic, cpu = Traffic.processCPUSeconds()
        defer {
            seconds[phase, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let after = communicator.traffic
            sent[phase, default: 0] += after.bytesSent - before.bytesSent
            busy[phase, default: 0] += Traffic.processCPUSeconds() - cpu - (after.cpuSeconds - before.cpuSeconds)
        }
        return try body()
    }

    /// Gathers every rank's phase times, busy times (CPU time less MPI's polling in waits) and
    /// bytes sent per phase, and its bytes put into all-to-alls, and prints them on stderr from
    /// rank 0 with the share of the all-to-all input each rank sent away against the (P − 1)/P an
    /// even all-to-all moves; collective. `choice` says why the partition was chosen.
    func report(partition: Partition, choice: String) throws {
        let phases = Phase.allCases
        let mine: [Double] = phases.flatMap { [seconds[$0] ?? 0, busy[$0] ?? 0, Double(sent[$0] ?? 0)] }
            + [Double(communicator.traffic.bytesSent), Double(communicator.traffic.allToAllBytes)]
        let all = try communicator.allgather(mine)
        guard communicator.rank == 0 else { return }
        let p = communicator.size
        var lines = ["flashdist stats: \(p) rank\(p == 1 ? "" : "s"), partition \(partition.rawValue) (\(choice))"]
        for rank in 0..<p {
            let row = Array(all[rank * mine.count..<(rank + 1) * mine.count])
            let text = phases.indices.map { i in
                let (time, busy, bytes) = (row[3 * i], row[3 * i + 1], row[3 * i + 2])
                return String(format: "%@ %.3f s (busy %.3f s CPU, sent %.0f B)", phases[i].rawValue, time, busy, bytes)
            }.joined(separator: ", ")
            let (sent, input) = (row[mine.count - 2], row[mine.count - 1])
            var line = "  rank \(rank): \(text); sent \(Int64(sent)) B in all"
            if input > 0 {
                line += String(format: " = %.4f of %.0f B put into all-to-alls ((P-1)/P = %.4f)", sent / input, input, Double(p - 1) / Double(p))
            }
            lines.append(line)
        }
        FileHandle.standardError.write(Data((lines.joined(separator: "\n") + "\n").utf8))
    }
}
