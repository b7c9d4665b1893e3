import ArgumentParser
import Distributed
import TensorIO
import TensorSlices

struct BackwardCommand: DistributedCommand, TunedCommand {
    static let configuration = CommandConfiguration(
        commandName: "backward",
        abstract: "Gradients from a saved forward: dq, dk, dv, recomputing the attention from o and lse.")

    @OptionGroup var files: InputFiles
    @Option(help: "The forward's output, shaped like q with v's head dim (o.npy of `flashdist attention`); or the entry o of --input.")
    var o: String?
    @Option(help: "The forward's logsumexp, (batch, heads, seqlen_q) or (heads, total_q) (lse.npy of `flashdist attention`); or the entry lse of --input.")
    var lse: String?
    @Option(help: "lse's float32 rounding error, shaped like lse (lse_residual.npy of `flashdist attention --save-lse-residual`); or the entry lse_residual of --input. Without it the backward takes it as zero, which loses digits when logits are large (|S| ~ 10³).")
    var lseResidual: String?
    @Option(name: .customLong("do"), help: "Gradient of the output, shaped like o; or the entry do of --input.")
    var dO: String?
    @OptionGroup var options: FileRunOptions
    @OptionGroup var tuning: TuningOptions

    func run(on communicator: Communicator) throws {
        let (tensors, saved, layout) = try communicator.agree {
            let tensors = try AttentionTensors(files, dO: dO, requireDO: true)
            let saved = (o: try files.required("o", path: o), lse: try files.required("lse", path: lse),
                         lseResidual: try files.tensor("lse_residual", path: lseResidual))
            let layout = try options.layout(tensors, ranks: communicator.size)
            guard saved.o.shape == layout.oShape else {
                throw TensorIOError(saved.o.label, "shape \(shapeText(saved.o.shape)) is not o's \(shapeText(layout.oShape)) (q's with v's head dim)")
            }
            guard saved.lse.shape == layout.lseShape else {
                throw TensorIOError(saved.lse.label, "shape \(shapeText(saved.lse.shape)) is not \(layout.isVarlen ? "(heads, total_q)" : "(batch, heads, seqlen_q)") = \(shapeText(layout.lseShape))")
            }
            if let residual = saved.lseResidual, residual.shape != layout.lseShape {
                throw TensorIOError(residual.label, "shape \(shapeText(residual.shape)) differs from lse's \(shapeText(layout.lseShape))")
            }
            return (tensors, saved, layout)
        }
        try options.run(layout, on: communicator).backward(tensors, o: saved.o, lse: saved.lse, lseResidual: saved.lseResidual)
    }
}
