import ArgumentParser
import Distributed
import TensorIO

struct BackwardCommand: DistributedCommand {
    static let configuration = CommandConfiguration(
        commandName: "backward",
        abstract: "Gradients from a saved forward: dq.npy, dk.npy, dv.npy, recomputing the attention from o.npy and lse.npy.")

    @OptionGroup var files: InputFiles
    @Option(help: "The forward's output, shaped like q (o.npy of `flashdist attention`).")
    var o: String
    @Option(help: "The forward's logsumexp, (batch, heads, seqlen_q) (lse.npy of `flashdist attention`).")
    var lse: String
    @Option(name: .customLong("do"), help: "Gradient of the output, shaped like q.")
    var dO: String
    @OptionGroup var mask: MaskOptions
    @OptionGroup var scores: ScoreOptions
    @OptionGroup var threads: ThreadOptions
    @OptionGroup var partition: PartitionOptions
    @Option(help: "Output directory (created if missing); files appear only when all are written.")
    var out: String

    func run(on communicator: Communicator) throws {
        let layout = try communicator.agree {
            let layout = try AttentionLayout.read(q: files.q, k: files.k, v: files.v, dO: dO, mask: mask, scores: scores)
            let oShape = try Npy.readFloatHeader(o).shape, lseShape = try Npy.readFloatHeader(lse).shape
            guard oShape == layout.qShape else {
                throw TensorIOError(o, "shape \(shapeText(oShape)) differs from q's \(shapeText(layout.qShape))")
            }
            guard lseShape == layout.lseShape else {
                throw TensorIOError(lse, "shape \(shapeText(lseShape)) is not \(layout.isVarlen ? "(heads, total_q)" : "(batch, heads, seqlen_q)") = \(shapeText(layout.lseShape))")
            }
            if scores.saveDropoutMask { try DropoutMaskOutput.check(layout) }
            return layout
        }
        try PartitionedRun(communicator: communicator, options: partition, threads: threads.count, layout: layout,
                           saveDropoutMask: scores.saveDropoutMask, out: out)
            .backward(q: files.q, k: files.k, v: files.v, o: o, lse: lse, dO: dO)
    }
}
