import ArgumentParser
import Distributed
import FlashAttention
import Foundation

struct BenchCommand: DistributedCommand, TunedCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time forward (and backward) on random data: median time, GFLOP/s, share of the FMA peak, peak RSS.",
        discussion: """
            Under mpirun every rank draws its part of the same seeded inputs, runs the chosen partition, \
            and rank 0 reports the slowest rank's times with every rank's detail.
            """)

    @Option(parsing: .unconditional) var batch = 1
    @Option(parsing: .unconditional) var heads = 8
    @Option(parsing: .unconditional, help: "kv heads (default: heads); heads must be a multiple.") var kvHeads: Int?
    @Option(parsing: .unconditional) var seqlenQ = 2048
    @Option(parsing: .unconditional, help: "Key length (default: seqlen-q).") var seqlenK: Int?
    @Option(parsing: .unconditional) var headDim = 64
    @Option(parsing: .unconditional, help: "Head dim of v and o (default: head-dim), 1 to 256: DeepSeek's MLA uses 192 and 128.")
    var headDimV: Int?
    @OptionGroup var mask: MaskOptions
    @OptionGroup var threads: ThreadOptions
    @OptionGroup var partition: PartitionOptions
    @OptionGroup var tuning: TuningOptions
    @Option(parsing: .unconditional, help: "flash (tiled) or standard: textbook attention storing every head's N×N probabilities (without mpirun; causal and window masks).")
    var algorithm: Algorithm = .flash
    @Option(help: "Attention sinks, one per head: zero, or random (standard normals drawn after dO); the flash algorithm only.")
    var sinks: BenchSinks?
    @Option(parsing: .unconditional, help: "Query rows of the flash forward's tiles, a multiple of 16 up to 1024 (default: 64 to 1024, from the keys and the caches).")
    var blockQ: Int?
    @Option(parsing: .unconditional, help: "Keys of the flash forward's tiles, a multiple of 16 up to 1024 (default: 64).") var blockK: Int?
    @Option(parsing: .unconditional, help: "Report this FMA peak (GFLOP/s per rank) instead of measuring it: for runs under a cache simulator, where the probe would take minutes.")
    var peakGflops: Double?
    @Option(parsing: .unconditional, help: "Untimed runs before the timed ones.") var warmup = 1
    @Option(parsing: .unconditional, help: "Timed runs; the median is reported.") var repeats = 5
    @Flag(help: "Also time the backward.") var backward = false
    @Flag(help: "Check sampled rows against a float64 reference and print the max abs errors (without mpirun).")
    var verify = false
    @Flag(help: "Print one JSON line (keys as ../shared/peers/torch_sdpa.py, and the --record columns) instead of text.")
    var json = false
    @Option(help: "Append the result with its configuration and machine facts to FILE: a .csv or .jsonl file.")
    var record: String?
    @Option(help: "A label for the record's experiment column, to tell sweeps apart in one file.")
    var experiment = ""

    func validate() throws {
        // Batch, heads and head dim are the library's to check (AttentionProblem), worded by
        // ProblemSources; these are bench's own: it draws at least one row, and runs at least once.
        for (option, value, least) in [("--seqlen-q", seqlenQ, 1), ("--seqlen-k", seqlenK ?? seqlenQ, 1),
                                       ("--warmup", warmup, 0), ("--repeats", repeats, 1)]
        where value < least {
            throw ValidationError("\(option): must be at least \(least), got \(value)")
        }
        if let peakGflops, !(peakGflops > 0) { throw ValidationError("--peak-gflops: must be positive, got \(peakGflops)") }
        if algorithm == .standard && (blockQ != nil || blockK != nil) {
            throw ValidationError("--block-q and --block-k set the flash algorithm's tiles; --algorithm standard has none")
        }
        if algorithm == .standard && sinks != nil { throw ValidationError("--sinks: the flash algorithm only") }
    }

    /// --block-q and --block-k in place of the forward's row block and key block in the tiles every
    /// call of this process uses (the same on every rank: all take the same options).
    private func overrideForwardTiles() throws {
        var tiling = KernelConfiguration.current.tiling
        for (option, value, keys) in [("--block-q", blockQ, false), ("--block-k", blockK, true)] {
            guard let value else { continue }
            var trial = tiling
            if keys { trial.keyColumns = value } else { trial.forwardRows = value }
            if let problem = trial.problem { throw ValidationError("\(option): \(problem)") }
            tiling = trial
        }
        guard tiling != KernelConfiguration.current.tiling else { return }
        KernelConfiguration.current.tiling = tiling
        KernelConfiguration.current.tileSource = .options
    }

    func run(on communicator: Communicator) throws {
        // Checked on every rank and agreed on, so a bad option or record file is one error line.
        let (problem, recordFile) = try communicator.agree { () throws -> (AttentionProblem, RecordFile?) in
            if verify && communicator.isDistributed { throw ValidationError("--verify runs without mpirun only") }
            try MemoryBudget(threads: threads.count, ranks: communicator.size)
                .check(batch: Double(batch), queries: Double(batch) * Double(seqlenQ), keys: Double(batch) * Double(seqlenK ?? seqlenQ),
                       heads: heads, kvHeads: kvHeads ?? heads, headDim: max(headDim, headDimV ?? headDim), backward: backward,
                       label: "--batch \(batch) --seqlen-q \(seqlenQ) --seqlen-k \(seqlenK ?? seqlenQ) --heads \(heads) --head-dim \(headDim)"
                           + (headDimV.map { " --head-dim-v \($0)" } ?? ""))
            var options = mask.attentionOptions(headDim: headDim)
            let (queryElements, keyElements) = (batch * seqlenQ * heads * headDim, batch * (seqlenK ?? seqlenQ) * (kvHeads ?? heads) * headDim)
            options.sinks = sinks?.values(heads: heads, after: 2 * queryElements + 2 * keyElements)
            let problem: AttentionProblem
            do throws(AttentionError) {
                problem = try AttentionProblem(batch: batch, seqlenQ: seqlenQ, seqlenK: seqlenK ?? seqlenQ, heads: heads,
                                               kvHeads: kvHeads ?? heads, headDim: headDim, valueHeadDim: headDimV, options: options)
            } catch {
                throw ProblemSources(batch: "--batch", heads: "--heads", kvHeads: "--kv-heads", headDim: "--head-dim",
                                     valueHeadDim: "--head-dim-v").worded(error)
            }
            if algorithm == .standard && communicator.isDistributed {
                throw ValidationError("--algorithm standard runs without mpirun only")
            }
            try overrideForwardTiles()
            if algorithm == .standard { try StandardMemory(problem, threads: threads.count).checkFits() }
            return (problem, communicator.rank == 0 ? try record.map { try RecordFile($0, columns: BenchReport.columns) } : nil)
        }
        let runs = warmup + repeats
        let progress = BenchProgress(communicator: communicator, phases: backward ? ["forward", "backward"] : ["forward"],
                                     runsPerPhase: runs)
        let runner = BenchRunner(problem: problem, algorithm: algorithm, communicator: communicator, threads: threads.count, warmup: warmup,
                                 repeats: repeats, backward: backward, givenPeak: peakGflops, progress: progress)
        let kind = Partition.resolved(partition.partition, kvHeads: problem.kvHeads, ranks: communicator.size).partition
        let measurement = communicator.isDistributed ? try runner.distributed(kind, ulysses: partition.ulysses) : try runner.threaded(verify: verify)
        guard communicator.rank == 0 else { return }
        let report = BenchReport(problem: problem, measurement: measurement, threads: threads.count,
                                 partition: communicator.isDistributed ? kind : nil, algorithm: algorithm, experiment: experiment,
                                 warmup: warmup, repeats: repeats)
        try recordFile?.append(report.record)
        print(json ? report.jsonLine : report.text)
    }
}
