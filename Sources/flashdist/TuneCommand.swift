import ArgumentParser
import Distributed
import FlashAttention
import Foundation

/// `N:D` or `N:D:causal`, the form compare_torch.py takes.
struct TuneShape: ExpressibleByArgument, CustomStringConvertible {
    let seqlen: Int
    let headDim: Int
    let causal: Bool

    init?(argument: String) {
        let parts = argument.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2 || (parts.count == 3 && parts[2] == "causal"), let seqlen = Int(parts[0]), let headDim = Int(parts[1]),
              seqlen >= 1, (1...256).contains(headDim) else { return nil }
        (self.seqlen, self.headDim, self.causal) = (seqlen, headDim, parts.count == 3)
    }

    var description: String { "\(seqlen):\(headDim)\(causal ? ":causal" : "")" }
}

struct TuneCommand: DistributedCommand {
    static let configuration = CommandConfiguration(
        commandName: "tune",
        abstract: "Time a few tilings on this machine and keep the fastest for later runs, in the tuning file.",
        discussion: """
            The file is FLASHDIST_TUNING, or tuning.json in $XDG_CACHE_HOME/flashdist (default ~/.cache/flashdist); \
            its entry for this CPU model, instruction set (FLASHDIST_ISA or the widest) and cache sizes is replaced. \
            Only block sizes that never change a bit are tuned: tuned and fitted runs give the same bytes.
            """)

    @Option(name: .customLong("shape"), parsing: .unconditionalSingleValue,
            help: "A shape to time, N:D or N:D:causal (repeat for several; default 2048:64). The choice is best over all of them.")
    var shapes: [TuneShape] = []
    @Option(parsing: .unconditional) var heads = 8
    @OptionGroup var threads: ThreadOptions
    @Option(parsing: .unconditional, help: "Rounds over all candidates, after one untimed; each candidate's median counts.")
    var rounds = 3

    func validate() throws {
        if heads < 1 { throw ValidationError("--heads: must be at least 1, got \(heads)") }
        if rounds < 1 { throw ValidationError("--rounds: must be at least 1, got \(rounds)") }
    }

    func run(on communicator: Communicator) throws {
        // Agreed on, so that under mpirun the refusal is one line from rank 0.
        try communicator.agree {
            guard !communicator.isDistributed else {
                throw ValidationError("flashdist tune runs without mpirun: tune once per kind of machine; under mpirun every rank takes rank 0's tiles")
            }
        }
        let environment = ProcessInfo.processInfo.environment
        guard let path = TuningFile.location(environment: environment) else {
            throw ValidationError("FLASHDIST_TUNING=off leaves no tuning file to write: set it to a path or unset it")
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw ValidationError("\(path): is a directory; FLASHDIST_TUNING names the tuning file itself")
        }
        var file: TuningFile
        do {
            file = try TuningFile.read(from: path) ?? TuningFile()
        } catch {
            FileHandle.standardError.write(Data("flashdist: warning: \(error); writing a new one\n".utf8))
            file = TuningFile()
        }
        let configuration = KernelConfiguration.current, cpu = CPUInfo.host
        let shapes = self.shapes.isEmpty ? [TuneShape(argument: "2048:64")!] : self.shapes
        let problems = try shapes.map { shape in
            try MemoryBudget(threads: threads.count, ranks: 1)
                .check(batch: 1, queries: Double(shape.seqlen), keys: Double(shape.seqlen), heads: heads, kvHeads: heads,
                       headDim: shape.headDim, backward: true, label: "--shape \(shape)")
            return try AttentionProblem(batch: 1, seqlenQ: shape.seqlen, seqlenK: shape.seqlen, heads: heads, kvHeads: heads,
                                        headDim: shape.headDim,
                                        options: AttentionOptions(softmaxScale: AttentionOptions.defaultScale(headDim: shape.headDim),
                                                                  causal: shape.causal))
        }
        print("flashdist tune: \(MachineProbe.kernelPath()); \(threads.count) threads, \(heads) heads, "
              + "shapes \(shapes.map(\.description).joined(separator: " ")), \(rounds) rounds")
        let trials = TileTrials(problems: problems, instructionSet: configuration.instructionSet, caches: cpu.caches,
                                threads: threads.count, rounds: rounds)
        let result = try trials.run { print("  \($0)") }
        let entry = TuningFile.Entry(
            host: TuningFile.Key(cpu: cpu.model, isa: configuration.instructionSet, caches: cpu.caches), tiles: result.tiles,
            measured: TuningFile.Measurement(date: ISO8601DateFormatter().string(from: Date()), shapes: shapes.map(\.description),
                                             threads: threads.count, forwardGain: result.forwardGain, backwardGain: result.backwardGain))
        file.record(entry)
        do {
            try file.write(to: path)
        } catch {
            throw ValidationError("\(path): cannot be written (\(error.localizedDescription))")
        }
        print(String(format: "  chosen: forward rows %@ (%.3f× fitted), backward %@ rows × %@ keys (%.3f× fitted); written to %@",
                     result.tiles.forwardRows.map(String.init) ?? "fitted", result.forwardGain, String(result.tiles.backwardRows),
                     result.tiles.backwardKeys.map(String.init) ?? "fitted", result.backwardGain, path))
    }
}
