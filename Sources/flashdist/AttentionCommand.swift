import ArgumentParser
import FlashAttention
import TensorIO

struct AttentionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention",
        abstract: "Attention on .npy files: writes o.npy and lse.npy, and with --do also dq.npy, dk.npy, dv.npy.")

    @Option(help: "Queries, (batch, seqlen_q, heads, head_dim) float32/float16/float64 .npy.")
    var q: String
    @Option(help: "Keys, (batch, seqlen_k, kv_heads, head_dim).")
    var k: String
    @Option(help: "Values, shaped like k.")
    var v: String
    @Option(name: .customLong("do"), help: "Gradient of the output, shaped like q: also run the backward.")
    var dO: String?
    @OptionGroup var mask: MaskOptions
    @OptionGroup var threads: ThreadOptions
    @Option(help: "Output directory (created if missing); files appear only when all are written.")
    var out: String

    func run() throws {
        let inputs = try AttentionInputs.load(q: q, k: k, v: v, dO: dO, mask: mask)
        let problem = inputs.problem
        let directory = try OutputDirectory(out)
        do {
            let (o, lse) = FlashAttention.forward(problem, q: inputs.q, k: inputs.k, v: inputs.v, threads: threads.count)
            let lseShape = [problem.batch, problem.heads, inputs.qShape[1]]
            try directory.stage("o.npy", o.withUnsafeBufferPointer { Npy.encode($0, shape: inputs.qShape) })
            try directory.stage("lse.npy", lse.withUnsafeBufferPointer { Npy.encode($0, shape: lseShape) })
            if let dO = inputs.dO {
                let grads = FlashAttention.backward(problem, q: inputs.q, k: inputs.k, v: inputs.v,
                                                   o: o, lse: lse, dO: dO, threads: threads.count)
                try directory.stage("dq.npy", grads.dQ.withUnsafeBufferPointer { Npy.encode($0, shape: inputs.qShape) })
                try directory.stage("dk.npy", grads.dK.withUnsafeBufferPointer { Npy.encode($0, shape: inputs.kShape) })
                try directory.stage("dv.npy", grads.dV.withUnsafeBufferPointer { Npy.encode($0, shape: inputs.kShape) })
            }
            try directory.commit()
        } catch {
            directory.discard()
            throw error
        }
    }
}
