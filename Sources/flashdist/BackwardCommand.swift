import ArgumentParser
import Distributed
import TensorIO
import TensorSlices

struct BackwardCommand: DistributedCommand {
    static let configuration = CommandConfiguration(
        commandName: "backward",
        abstract: "Gradients from a saved forward: dq, dk, dv, recomputing the attention from o and lse.")

    @OptionGroup var files: InputFiles
    @Option(help: "The forward's output, shaped like q (o.npy of `flashdist attention`); or the entry o of --input.")
    var o: String?
    @Option(help: "The forward's logsumexp, (batch, heads, seqlen_q) or (heads, total_q) (lse.npy of `flashdist attention`); or the entry lse of --input.")
    var lse: String?
    @Option(name: .customLong("do"), help: "Gradient of the output, shaped like q; or the entry do of --input.")
    var dO: String?
    @OptionGroup var options: FileRunOptions

    func run(on communicator: Communicator) throws {
        let (tensors, saved, layout) = try communicator.agree {
            let tensors = try AttentionTensors(files, dO: dO, requireDO: true)
            let saved = (o: try files.required("o", path: o), lse: try files.required("lse", path: lse))
            let layout = try options.layout(tensors, ranks: communicator.size)
            guard saved.o.shape == layout.qShape else {
                throw TensorIOError(saved.o.label, "shape \(shapeText(saved.o.shape)) differs from q's \(shapeText(layout.qShape))")
            }
            guard saved.lse.shape == layout.lseShape else {
                throw TensorIOError(saved.lse.label, "shape \(shapeText(saved.lse.shape)) is not \(layout.isVarlen ? "(heads, total_q)" : "(batch, heads, seqlen_q)") = \(shapeText(layout.lseShape))")
            }
            return (tensors, saved, layout)
        }
        try options.run(layout, on: communicator).backward(tensors, o: saved.o, lse: saved.lse)
    }
}
