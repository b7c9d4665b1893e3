import ArgumentParser
import Distributed

/// What `attention` and `backward` take after their input files (the masks and score options,
/// threads, the partition, the outputs), and the two steps both make with them: the layout every
/// rank checks, then the run that reads, computes and writes.
struct FileRunOptions: ParsableArguments {
    @OptionGroup var mask: MaskOptions
    @OptionGroup var scores: ScoreOptions
    @OptionGroup var threads: ThreadOptions
    @OptionGroup var partition: PartitionOptions
    @OptionGroup var stats: StatsOption
    @OptionGroup var output: OutputOptions

    /// The tensors' layout and problem, with the memory of a run on `ranks` ranks, and the
    /// dropout mask's size if it is to be saved.
    func layout(_ tensors: AttentionTensors, ranks: Int) throws -> AttentionLayout {
        let layout = try AttentionLayout(tensors, mask: mask, scores: scores, budget: MemoryBudget(threads: threads.count, ranks: ranks))
        if scores.saveDropoutMask { try DropoutMaskOutput.check(layout) }
        return layout
    }

    func run(_ layout: AttentionLayout, on communicator: Communicator) -> PartitionedRun {
        PartitionedRun(communicator: communicator, options: partition, stats: stats.stats, threads: threads.count,
                       layout: layout, saveDropoutMask: scores.saveDropoutMask, output: output)
    }
}
