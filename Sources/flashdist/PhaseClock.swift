import Distributed
import Foundation

/// Wall time per phase of a run, and `--stats`: every rank's times and traffic, printed by rank 0.
struct PhaseClock {
    enum Phase: String, CaseIterable {
        case read, forward, backward, write
    }

    private var seconds: [Phase: Double] = [:]

    mutating func time<T>(_ phase: Phase, _ body: () throws -> T) rethrows -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { seconds[phase, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        return try body()
    }

    /// Gathers every rank's phase times, time in transfers and bytes sent, and prints them on
    /// stderr from rank 0, with the share of its all-to-all input each rank sent away against the
    /// (P − 1)/P an even all-to-all moves; collective.
    func report(_ communicator: Communicator, partition: Partition) throws {
        let traffic = communicator.traffic
        let mine = Phase.allCases.map { seconds[$0] ?? 0 }
            + [traffic.seconds, Double(traffic.bytesSent), Double(traffic.allToAllBytes)]
        let all = try communicator.allgather(mine)
        guard communicator.rank == 0 else { return }
        let p = communicator.size
        var lines = ["flashdist stats: \(p) rank\(p == 1 ? "" : "s"), partition \(partition.rawValue)"]
        for rank in 0..<p {
            let row = Array(all[rank * mine.count..<(rank + 1) * mine.count])
            let phases = zip(Phase.allCases, row).map { String(format: "%@ %.3f s", $0.rawValue, $1) }.joined(separator: ", ")
            let (sent, input) = (row[mine.count - 2], row[mine.count - 1])
            var line = "  rank \(rank): \(phases); in transfers \(String(format: "%.3f", row[Phase.allCases.count])) s; sent \(Int64(sent)) B"
            if input > 0 {
                line += String(format: " = %.4f of %.0f B put into all-to-alls ((P-1)/P = %.4f)", sent / input, input, Double(p - 1) / Double(p))
            }
            lines.append(line)
        }
        FileHandle.standardError.write(Data((lines.joined(separator: "\n") + "\n").utf8))
    }
}
