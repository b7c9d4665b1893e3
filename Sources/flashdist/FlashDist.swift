import ArgumentParser
import Foundation
import FlashAttention

@main
struct FlashDist: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flashdist",
        abstract: "Exact FlashAttention on CPUs: threaded on one machine, across many with mpirun.",
        subcommands: [AttentionCommand.self, BenchCommand.self])

    /// Parses and runs a command; any failure is one line on stderr and a non-zero exit.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
            } else {
                let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
                let trimmed = message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message
                FileHandle.standardError.write(Data("flashdist: error: \(trimmed)\n".utf8))
            }
            Foundation.exit(code.rawValue)
        }
    }
}

/// `--window L,R`, -1 for an unbounded side.
struct Window: ExpressibleByArgument {
    let left: Int
    let right: Int

    init?(argument: String) {
        let parts = argument.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count == 2, let left = Int(parts[0].trimmingCharacters(in: .whitespaces)),
              let right = Int(parts[1].trimmingCharacters(in: .whitespaces)) else { return nil }
        (self.left, self.right) = (left, right)
    }
}

/// Options that shape the scores, shared by every command that computes attention.
struct MaskOptions: ParsableArguments {
    @Flag(help: "Causal mask, aligned bottom-right when seqlen_q != seqlen_k.")
    var causal = false

    @Option(parsing: .unconditional, help: "Sliding window L,R: keys within L before and R after the diagonal; -1 = unbounded.")
    var window: Window?

    @Option(parsing: .unconditional, help: "Scale of Q·Kᵀ before the softmax (default 1/sqrt(head dim)).")
    var softmaxScale: Float?

    func attentionOptions(headDim: Int) -> AttentionOptions {
        AttentionOptions(softmaxScale: softmaxScale ?? AttentionOptions.defaultScale(headDim: headDim),
                         causal: causal, windowLeft: window?.left ?? -1, windowRight: window?.right ?? -1)
    }
}

struct ThreadOptions: ParsableArguments {
    @Option(help: "Worker threads (default: all cores).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
    }

    var count: Int { threads ?? ProcessInfo.processInfo.activeProcessorCount }
}
