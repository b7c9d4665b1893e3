import ArgumentParser
import Distributed
import FlashAttention
import TensorIO

struct AttentionCommand: DistributedCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention",
        abstract: "Attention on .npy files: writes o.npy and lse.npy, and with --do also dq.npy, dk.npy, dv.npy.")

    @OptionGroup var files: InputFiles
    @Option(name: .customLong("do"), help: "Gradient of the output, shaped like q: also run the backward.")
    var dO: String?
    @OptionGroup var mask: MaskOptions
    @OptionGroup var scores: ScoreOptions
    @OptionGroup var threads: ThreadOptions
    @OptionGroup var partition: PartitionOptions
    @Option(help: "Output directory (created if missing); files appear only when all are written.")
    var out: String

    /// Under mpirun (or with --stats) the partitioned run; otherwise the threaded one below.
    func run(on communicator: Communicator) throws {
        guard communicator.isDistributed || partition.stats else { return try run() }
        let layout = try communicator.agree {
            let layout = try AttentionLayout.read(q: files.q, k: files.k, v: files.v, dO: dO, mask: mask, scores: scores)
            if scores.saveDropoutMask { try DropoutMaskOutput.check(layout) }
            return layout
        }
        try PartitionedRun(communicator: communicator, options: partition, threads: threads.count, layout: layout,
                           saveDropoutMask: scores.saveDropoutMask, out: out)
            .attention(q: files.q, k: files.k, v: files.v, dO: dO)
    }

    func run() throws {
        let inputs = try AttentionInputs.load(q: files.q, k: files.k, v: files.v, dO: dO, mask: mask, scores: scores)
        let layout = inputs.layout, problem = layout.problem
        if scores.saveDropoutMask { try DropoutMaskOutput.check(layout) }
        let directory = try OutputDirectory(out)
        do {
            let (o, lse) = FlashAttention.forward(problem, q: inputs.q, k: inputs.k, v: inputs.v, threads: threads.count)
            try directory.stage("o.npy", o.withUnsafeBufferPointer { Npy.encode($0, shape: layout.qShape) })
            try directory.stage("lse.npy", lse.withUnsafeBufferPointer { Npy.encode($0, shape: layout.lseShape) })
            if let dO = inputs.dO {
                let grads = FlashAttention.backward(problem, q: inputs.q, k: inputs.k, v: inputs.v,
                                                   o: o, lse: lse, dO: dO, threads: threads.count)
                try directory.stage("dq.npy", grads.dQ.withUnsafeBufferPointer { Npy.encode($0, shape: layout.qShape) })
                try directory.stage("dk.npy", grads.dK.withUnsafeBufferPointer { Npy.encode($0, shape: layout.kShape) })
                try directory.stage("dv.npy", grads.dV.withUnsafeBufferPointer { Npy.encode($0, shape: layout.kShape) })
            }
            if scores.saveDropoutMask {
                let mask = DropoutMaskOutput.values(problem, heads: 0..<problem.heads)
                try directory.stage(DropoutMaskOutput.name,
                                    mask.withUnsafeBufferPointer { Npy.encode($0, shape: DropoutMaskOutput.shape(layout)) })
            }
            try directory.commit()
        } catch {
            directory.discard()
            throw error
        }
    }
}
