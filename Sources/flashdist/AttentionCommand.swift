import ArgumentParser
import Distributed
import FlashAttention
import TensorIO

struct AttentionCommand: DistributedCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention",
        abstract: "Attention on .npy or safetensors files: writes o and lse, and with dO also dq, dk, dv.")

    @OptionGroup var files: InputFiles
    @Option(name: .customLong("do"), help: "Gradient of the output, shaped like q: also run the backward.")
    var dO: String?
    @OptionGroup var mask: MaskOptions
    @OptionGroup var scores: ScoreOptions
    @OptionGroup var threads: ThreadOptions
    @OptionGroup var partition: PartitionOptions
    @OptionGroup var stats: StatsOption
    @OptionGroup var output: OutputOptions

    func run(on communicator: Communicator) throws {
        let (tensors, layout) = try communicator.agree {
            let tensors = try AttentionTensors(files, dO: dO, requireDO: false)
            let layout = try AttentionLayout(tensors, mask: mask, scores: scores,
                                             budget: MemoryBudget(threads: threads.count, ranks: communicator.size))
            if scores.saveDropoutMask { try DropoutMaskOutput.check(layout) }
            return (tensors, layout)
        }
        try PartitionedRun(communicator: communicator, options: partition, stats: stats.stats, threads: threads.count,
                           layout: layout, saveDropoutMask: scores.saveDropoutMask, output: output)
            .attention(tensors)
    }
}
