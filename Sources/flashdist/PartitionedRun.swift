import Distributed
import DistributedIO
import FlashAttention
import TensorIO
import TensorSlices

/// `attention` and `backward` on the ranks of a job, or on this process's threads alone: each
/// rank reads only its part of every input file, computes, and writes its part of every output
/// file, as the partition says (without mpirun and `--stats`, the whole problem threaded). Every step that can fail on some ranks only is agreed on before the next
/// collective one, so bad input stops every rank before any compute.
struct PartitionedRun {
    let communicator: Communicator
    let options: PartitionOptions
    /// `--stats`: run a partition even on one rank, and report its phases.
    let stats: Bool
    let threads: Int
    let layout: AttentionLayout
    let saveDropoutMask: Bool
    let output: OutputOptions

    /// The forward, and with dO the backward: `flashdist attention`.
    func attention(_ tensors: AttentionTensors, saveLSEResidual: Bool) throws {
        try run(outputs: layout.attentionOutputs(backward: tensors.dO != nil, saveLSEResidual: saveLSEResidual)) { partition, output, clock in
            let inputs = try clock.time(.read) {
                try communicator.agree {
                    try (q: read(tensors.q, partition.queries), k: read(tensors.k, partition.keys),
                         v: read(tensors.v, values(partition.keys)), dO: tensors.dO.map { try read($0, outputs(partition.queries)) })
                }
            }
            let forward = try clock.time(.forward) { try partition.forward(q: inputs.q, k: inputs.k, v: inputs.v) }
            try clock.time(.write) {
                try write("o", forward.o, outputs(partition.queries), to: output)
                try write("lse", forward.lse, partition.lse, to: output)
                if saveLSEResidual { try write("lse_residual", forward.lseResidual, partition.lse, to: output) }
            }
            guard let dO = inputs.dO else { return }
            let gradients = try clock.time(.backward) { try partition.backward(forward.saved, dO: dO) }
            try write(gradients, of: partition, to: output, clock: &clock)
            try writeSinkGradient(of: partition, o: forward.o, dO: dO, lse: forward.lse, lseResidual: forward.lseResidual,
                                  to: output, clock: &clock)
        }
    }

    /// The backward from a saved forward: `flashdist backward`.
    func backward(_ tensors: AttentionTensors, o: StoredTensor, lse: StoredTensor, lseResidual: StoredTensor?) throws {
        try run(outputs: layout.backwardOutputs) { partition, output, clock in
            let inputs = try clock.time(.read) {
                try communicator.agree {
                    try (q: read(tensors.q, partition.queries), k: read(tensors.k, partition.keys), v: read(tensors.v, values(partition.keys)),
                         o: read(o, outputs(partition.queries)), lse: read(lse, partition.lse),
                         lseResidual: lseResidual.map { try read($0, partition.lse) }, dO: read(tensors.dO!, outputs(partition.queries)))
                }
            }
            let gradients = try clock.time(.backward) {
                let saved = try partition.restore(q: inputs.q, k: inputs.k, v: inputs.v, o: inputs.o, lse: inputs.lse,
                                                  lseResidual: inputs.lseResidual)
                return try partition.backward(saved, dO: inputs.dO)
            }
            try write(gradients, of: partition, to: output, clock: &clock)
            try writeSinkGradient(of: partition, o: inputs.o, dO: inputs.dO, lse: inputs.lse,
                                  lseResidual: inputs.lseResidual, to: output, clock: &clock)
        }
    }

    /// dsinks, when the problem has sinks, from this rank's parts of o, dO, lse and its residual
    /// (`SinkGradientReduction`); rank 0 writes it.
    private func writeSinkGradient(of partition: any AttentionPartition, o: [Float], dO: [Float], lse: [Float], lseResidual: [Float]?,
                                   to output: CollectiveOutput, clock: inout PhaseClock) throws {
        guard let sinks = layout.problem.options.sinks else { return }
        let dSinks = try clock.time(.backward) {
            try SinkGradientReduction.compute(shapes: TensorShapes(layout.problem), sinks: sinks, queries: partition.queries, o: o, dO: dO,
                                              lseParts: partition.lse, lse: lse, lseResidual: lseResidual, on: communicator)
        }
        let heads = layout.problem.heads
        try clock.time(.write) {
            try output.write("dsinks", communicator.rank == 0 ? dSinks : [],
                             slice: AxisSlice(shape: [heads], axis: 0, range: 0..<(communicator.rank == 0 ? heads : 0)))
        }
    }

    /// Sets up the partition and the outputs, runs `body`, and renames the outputs into place only
    /// if every rank got through it.
    private func run(outputs names: [String],
                     _ body: (any AttentionPartition, CollectiveOutput, inout PhaseClock) throws -> Void) throws {
        let (kind, choice) = Partition.resolved(options.partition, kvHeads: layout.problem.kvHeads, ranks: communicator.size)
        let partition: any AttentionPartition = communicator.isDistributed || stats
            ? try communicator.agree { try kind.attention(layout.problem, on: communicator, threads: threads, ulysses: options.ulysses) }
            : ThreadedAttention(problem: layout.problem, threads: threads)
        let output = try CollectiveOutput(self.output.out, layout: self.output.layout(layout.outputs(names, dropoutMask: saveDropoutMask)),
                                          communicator: communicator)
        var clock = PhaseClock(communicator)
        do {
            try body(partition, output, &clock)
            if saveDropoutMask { try writeDropoutMask(of: partition, to: output, clock: &clock) }
            try clock.time(.write) { try output.commit() }
        } catch let failure as CollectiveFailure {
            output.abandon()
            throw failure
        }
        if stats { try clock.report(partition: kind, choice: choice) }
    }

    /// A partition's parts of q as parts of o and dO, and of k as of v and dV: the value head dim last.
    private func outputs(_ parts: [AxisSlice]) -> [AxisSlice] { parts.map(values) }
    private func values(_ part: AxisSlice) -> AxisSlice { part.withLastAxis(layout.problem.valueHeadDim) }

    private func read(_ tensor: StoredTensor, _ slice: AxisSlice) throws -> [Float] {
        try tensor.readFloats(slice: layout.shapes.inFile(slice))
    }

    /// The parts of a tensor, one after the other.
    private func read(_ tensor: StoredTensor, _ parts: [AxisSlice]) throws -> [Float] {
        if parts.count == 1 { return try read(tensor, parts[0]) }
        return try parts.flatMap { try read(tensor, $0) }
    }

    /// Writes `values`, the parts of output `name` one after the other, part by part; collective.
    private func write(_ name: String, _ values: [Float], _ parts: [AxisSlice], to output: CollectiveOutput) throws {
        // One part (a threaded run's whole tensor) goes as it is: no copy of a large output.
        if parts.count == 1 { return try output.write(name, values, slice: layout.shapes.inFile(parts[0])) }
        var start = 0
        for part in parts {
            try output.write(name, Array(values[start..<start + part.elementCount]), slice: layout.shapes.inFile(part))
            start += part.elementCount
        }
    }

    /// The mask of the heads and rows whose lse this rank writes (the whole mask on a single rank).
    private func writeDropoutMask(of partition: any AttentionPartition, to output: CollectiveOutput,
                                  clock: inout PhaseClock) throws {
        for lse in partition.lse {
            let mask = lse.axis == 1 ? DropoutMaskOutput.values(layout.problem, heads: lse.range)
                                     : DropoutMaskOutput.values(layout.problem, heads: 0..<layout.problem.heads, rows: lse.range)
            try clock.time(.write) {
                try output.write(DropoutMaskOutput.name, mask,
                                 slice: AxisSlice(shape: DropoutMaskOutput.shape(layout), axis: lse.axis, range: lse.range))
            }
        }
    }

    private func write(_ gradients: (dQ: [Float], dK: [Float], dV: [Float]), of partition: any AttentionPartition,
                       to output: CollectiveOutput, clock: inout PhaseClock) throws {
        try clock.time(.write) {
            try write("dq", gradients.dQ, partition.queries, to: output)
            try output.write("dk", gradients.dK, slice: layout.shapes.inFile(partition.keyGradients))
            try output.write("dv", gradients.dV, slice: layout.shapes.inFile(values(partition.keyGradients)))
        }
    }
}
