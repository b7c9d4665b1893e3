import ArgumentParser
import Distributed

struct AttentionCommand: DistributedCommand, TunedCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention",
        abstract: "Attention on .npy or safetensors files: writes o and lse, and with dO also dq, dk, dv.")

    @OptionGroup var files: InputFiles
    @Option(name: .customLong("do"), help: "Gradient of the output, shaped like o (q's shape with v's head dim): also run the backward.")
    var dO: String?
    @Flag(help: "Also write lse_residual (DIR/lse_residual.npy), lse's float32 rounding error, for `flashdist backward --lse-residual`.")
    var saveLSEResidual = false
    @OptionGroup var options: FileRunOptions
    @OptionGroup var tuning: TuningOptions

    func run(on communicator: Communicator) throws {
        let (tensors, layout) = try communicator.agree {
            let tensors = try AttentionTensors(files, dO: dO, requireDO: false)
            return (tensors, try options.layout(tensors, ranks: communicator.size))
        }
        try options.run(layout, on: communicator).attention(tensors, saveLSEResidual: saveLSEResidual)
    }
}
