import ArgumentParser
import Distributed
import FlashAttention
import TensorIO

struct AttentionCommand: DistributedCommand, TunedCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention",
        abstract: "Attention on .npy or safetensors files: writes o and lse, and with dO also dq, dk, dv.")

    @OptionGroup var files: InputFiles
    @Option(name: .customLong("do"), help: "Gradient of the output, shaped like o (q's shape with v's head dim): also run the backward.")
    var dO: String?
    @OptionGroup var mask: MaskOptions
    @OptionGroup var scores: ScoreOptions
    @OptionGroup var threads: ThreadOptions
    @Flag(help: "Also write lse_residual (DIR/lse_residual.npy), lse's float32 rounding error, for `flashdist backward --lse-residual`.")
    var saveLSEResidual = false
    @OptionGroup var tuning: TuningOptions
    @OptionGroup var partition: PartitionOptions
    @OptionGroup var output: OutputOptions

    /// Under mpirun (or with --stats) the partitioned run; otherwise the threaded one below.
    func run(on communicator: Communicator) throws {
        let (tensors, layout) = try communicator.agree {
            let tensors = try AttentionTensors(files, dO: dO, requireDO: false)
            let layout = try AttentionLayout(tensors, mask: mask, scores: scores,
                                             budget: MemoryBudget(threads: threads.count, ranks: communicator.size))
            if scores.saveDropoutMask { try DropoutMaskOutput.check(layout) }
            return (tensors, layout)
        }
        guard communicator.isDistributed || partition.stats else { return try runThreaded(tensors, layout, on: communicator) }
        try PartitionedRun(communicator: communicator, options: partition, threads: threads.count, layout: layout,
                           saveDropoutMask: scores.saveDropoutMask, output: output)
            .attention(tensors, saveLSEResidual: saveLSEResidual)
    }

    /// The whole problem on this process's threads, without the partitions' copies.
    private func runThreaded(_ tensors: AttentionTensors, _ layout: AttentionLayout, on communicator: Communicator) throws {
        let (q, k, v) = (try tensors.q.readFloats(), try tensors.k.readFloats(), try tensors.v.readFloats())
        let dO = try tensors.dO?.readFloats()
        let problem = layout.problem
        let names = layout.attentionOutputs(backward: dO != nil, saveLSEResidual: saveLSEResidual)
        let out = try CollectiveOutput(output.out, layout: output.layout(layout.outputs(names, dropoutMask: scores.saveDropoutMask)),
                                       communicator: communicator)
        do {
            let (o, lse, residual) = FlashAttention.forwardWithResidual(problem, q: q, k: k, v: v, threads: threads.count)
            try out.write("o", o, slice: .whole(layout.oShape))
            try out.write("lse", lse, slice: .whole(layout.lseShape))
            if saveLSEResidual { try out.write("lse_residual", residual, slice: .whole(layout.lseShape)) }
            if let dO {
                let grads = FlashAttention.backward(problem, q: q, k: k, v: v, o: o, lse: lse, lseResidual: residual, dO: dO,
                                                    threads: threads.count)
                try out.write("dq", grads.dQ, slice: .whole(layout.qShape))
                try out.write("dk", grads.dK, slice: .whole(layout.kShape))
                try out.write("dv", grads.dV, slice: .whole(layout.vShape))
                if problem.options.sinks != nil {
                    try out.write("dsinks", SinkGradient.compute(problem, o: o, dO: dO, lse: lse, lseResidual: residual),
                                  slice: .whole([problem.heads]))
                }
            }
            if scores.saveDropoutMask {
                try out.write(DropoutMaskOutput.name, DropoutMaskOutput.values(problem, heads: 0..<problem.heads),
                              slice: .whole(DropoutMaskOutput.shape(layout)))
            }
            try out.commit()
        } catch {
            out.abandon()
            throw error
        }
    }
}
