import ArgumentParser
import Foundation
import Distributed
import FlashAttention
import TensorIO

@main
struct FlashDist: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flashdist",
        abstract: "Exact FlashAttention on CPUs: threaded on one machine, across many with mpirun.",
        subcommands: [AttentionCommand.self, BackwardCommand.self, BenchCommand.self, TuneCommand.self])

    /// Parses and runs a command; any failure is one line on stderr and a non-zero exit. Under
    /// mpirun every rank runs this, and MPI is finalised once, on every path.
    static func main() {
        // The arguments as the system's bytes (a path that is not UTF-8 stays the path it was).
        let arguments = (1..<Int(CommandLine.argc)).map { index in
            FilePath.string(fromSystem: Array(UnsafeRawBufferPointer(start: CommandLine.unsafeArgv[index]!,
                                                                     count: strlen(CommandLine.unsafeArgv[index]!))))
        }
        let communicator: Communicator
        do {
            communicator = try Communicator.world(environment: ProcessInfo.processInfo.environment)
        } catch {
            exit(after: error, on: nil, shared: true)
        }
        InterruptCleanup.shared.install()
        var command: ParsableCommand
        do {
            try LaunchAgreement.check(arguments, on: communicator)
        } catch {
            exit(after: error, on: communicator, shared: true)
        }
        // Parsed once the ranks have agreed on their arguments, so that a parse error is reported
        // once, by rank 0.
        do {
            command = try parseAsRoot(arguments)
        } catch {
            exit(after: error, on: communicator, shared: true)
        }
        do {
            // Every rank runs the kernels of one instruction set with rank 0's tiles.
            let environment = ProcessInfo.processInfo.environment
            KernelConfiguration.current = try KernelConfiguration.agreed(on: communicator, environment: environment) {
                TuningOptions.tiles(for: $0, command: command, environment: environment)
            }
            if let distributed = command as? DistributedCommand {
                try distributed.run(on: communicator)
            } else {
                try command.run()
            }
        } catch {
            // Help asked of a command without subcommand comes from `run()`, alike on every rank.
            let shared = error is CollectiveFailure || error is CleanExit || !communicator.isDistributed
            exit(after: error, on: communicator, shared: shared)
        }
        communicator.finalize()
    }

    /// Reports `error` and exits. A failure every rank shares (bad options, or one agreed on
    /// through `Communicator.agree`) is printed by rank 0 alone and ends each rank normally; any
    /// other failure under MPI is this rank's own, and the ranks still waiting for it in a
    /// collective call would never return, so it ends the whole job.
    private static func exit(after error: Error, on communicator: Communicator?, shared: Bool) -> Never {
        let code = exitCode(for: error)
        let rank = communicator?.rank ?? 0
        if code == .success {
            if rank == 0 { print(fullMessage(for: error)) }
        } else if rank == 0 || !shared {
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            let trimmed = message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message
            let origin = shared ? "" : "rank \(rank): "
            FileHandle.standardError.write(Data("flashdist: error: \(origin)\(trimmed)\n".utf8))
        }
        if let communicator {
            if !shared { communicator.abort(exitCode: code.rawValue) }
            communicator.finalize()
        }
        Foundation.exit(code.rawValue)
    }
}

/// A command that runs on every rank of an mpirun job, and on a single rank without one.
protocol DistributedCommand: ParsableCommand {
    func run(on communicator: Communicator) throws
}

/// `--window L,R`, -1 for an unbounded side (the sizes are the library's to check).
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
    @Option(parsing: .unconditional, help: "Worker threads (default: all cores, shared out among the ranks mpirun starts on this machine).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads: must be at least 1, got \(threads)") }
        // Each thread has its own scratch and stack; far more threads than any machine has cores
        // is a typo, not a plan.
        if let threads, threads > Self.maximum { throw ValidationError("--threads: must be at most \(Self.maximum), got \(threads)") }
    }

    static let maximum = 4096

    var count: Int { threads ?? max(1, ProcessInfo.processInfo.activeProcessorCount / Self.ranksHere) }

    /// The ranks mpirun starts on this machine (1 without mpirun): they share its cores and memory.
    static var ranksHere: Int {
        max(1, ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap { Int($0) } ?? 1)
    }
}
