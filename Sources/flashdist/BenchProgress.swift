import Distributed
import Foundation

/// The one-line progress of a long bench on stderr — phase, run i of n, and the time left — shown
/// only when stderr is a terminal, and only by rank 0: the times it gets are the slowest rank's,
/// so the line speaks for the whole job. Anywhere else (a pipe, a log file, other ranks) it is
/// silent.
///
/// Under mpirun a rank's stderr is a pipe to mpirun, which passes it on to its own stderr: there
/// the terminal that counts is mpirun's (the rank's parent when rank 0 runs on mpirun's node).
final class BenchProgress {
    private let runsPerPhase: Int
    private let phases: [String]
    /// Wall seconds of one run of each finished phase, to estimate the phases still to come.
    private var secondsPerRun: [String: Double] = [:]
    private var phaseSeconds = 0.0

    /// nil when the line would not be seen.
    init?(communicator: Communicator, phases: [String], runsPerPhase: Int) {
        guard communicator.rank == 0, Self.stderrReachesTerminal(distributed: communicator.isDistributed) else { return nil }
        (self.phases, self.runsPerPhase) = (phases, runsPerPhase)
    }

    func started(_ phase: String) {
        phaseSeconds = 0
        show("\(phase)…")
    }

    /// Run `run` (from 1) of `phase` took `seconds` on the slowest rank.
    func finished(_ phase: String, run: Int, seconds: Double) {
        phaseSeconds += seconds
        let perRun = phaseSeconds / Double(run)
        secondsPerRun[phase] = perRun
        // Phases not started yet: the backward costs about 2.5 forwards (flash-attn's FLOP ratio).
        let later = phases.drop { $0 != phase }.dropFirst().reduce(0.0) { total, next in
            total + Double(runsPerPhase) * (secondsPerRun[next] ?? 2.5 * perRun)
        }
        let left = Double(runsPerPhase - run) * perRun + later
        show("\(phase) run \(run)/\(runsPerPhase), \(String(format: "%.1f", seconds)) s; about \(Self.duration(left)) left")
    }

    /// Clears the line before the results are printed.
    func done() { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }

    private func show(_ text: String) {
        FileHandle.standardError.write(Data("\r\u{1B}[Kflashdist bench: \(text)".utf8))
    }

    private static func stderrReachesTerminal(distributed: Bool) -> Bool {
        if isatty(STDERR_FILENO) != 0 { return true }
        guard distributed, let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(getppid())/fd/2")
        else { return false }
        return target.hasPrefix("/dev/pts/") || target.hasPrefix("/dev/tty")
    }

    private static func duration(_ seconds: Double) -> String {
        seconds < 90 ? String(format: "%.0f s", seconds) : String(format: "%.0f min", seconds / 60)
    }
}
