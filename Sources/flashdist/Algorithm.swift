import ArgumentParser
import FlashAttention
import Foundation

/// Which attention `bench` times: the tiled kernels, or the textbook one that stores N×N per head.
enum Algorithm: String, ExpressibleByArgument, CaseIterable {
    case flash
    case standard

    /// The record's impl column.
    var impl: String { self == .flash ? "flashdist" : "flashdist-standard" }
}

/// What the standard algorithm holds at its peak: the stored P of every head, and per worker one
/// head's scores, against the memory this machine has available, so that a run that cannot fit
/// is refused instead of pushing the machine (and whatever else runs on it) into swap.
struct StandardMemory {
    let bytes: Double

    init(_ problem: AttentionProblem, threads: Int) {
        let probabilities = Double(StandardAttention.probabilityElements(problem))
        let scoresPerHead = probabilities / Double(problem.batch * problem.heads)
        bytes = 4 * (probabilities + Double(min(threads, problem.batch * problem.heads)) * scoresPerHead)
    }

    func checkFits() throws {
        let available = MachineProbe.availableMemoryBytes()
        if bytes > 0.8 * available {
            throw ValidationError(String(format: "--algorithm standard: its N×N scores and probabilities need %.2f GiB, more than 80%% of the %.2f GiB available",
                                         bytes / 1_073_741_824, available / 1_073_741_824))
        }
    }
}
