import ArgumentParser
import Distributed

struct AttentionCommand: DistributedCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention",
        abstract: "Attention on .npy or safetensors files: writes o and lse, and with dO also dq, dk, dv.")

    @OptionGroup var files: InputFiles
    @Option(name: .customLong("do"), help: "Gradient of the output, shaped like q: also run the backward.")
    var dO: String?
    @OptionGroup var options: FileRunOptions

    func run(on communicator: Communicator) throws {
        let (tensors, layout) = try communicator.agree {
            let tensors = try AttentionTensors(files, dO: dO, requireDO: false)
            return (tensors, try options.layout(tensors, ranks: communicator.size))
        }
        try options.run(layout, on: communicator).attention(tensors)
    }
}
