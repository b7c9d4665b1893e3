import Distributed
import FlashAttention
import TensorIO
import TensorSlices

/// The shapes of q, k, v (and dO) checked against each other and against the score options'
/// files (cu_seqlens, ALiBi slopes), and the problem they make.
struct AttentionLayout {
    let problem: AttentionProblem
    /// As in the files: 4-D for a fixed-length batch, packed 3-D for a variable-length one. v
    /// (and so dv) is k's shape with the value head dim last; o, do are q's with it.
    let qShape: [Int], kShape: [Int], vShape: [Int]
    var oShape: [Int] { Array(qShape.dropLast()) + [problem.valueHeadDim] }
    var isVarlen: Bool { problem.packedLSE }
    /// The shapes the partitions cut; `shapes.inFile` maps them to the files' layout.
    var shapes: TensorShapes { TensorShapes(problem) }
    var lseShape: [Int] { shapes.inFile(shapes.lse) }

    /// From the tensors' headers alone, reading no tensor data (only the small offsets and
    /// slopes): what every rank of a distributed run checks before any compute, the memory the
    /// run needs (`budget`) included.
    init(_ tensors: AttentionTensors, mask: MaskOptions, scores: ScoreOptions, budget: MemoryBudget) throws {
        try self.init(q: (tensors.q.label, tensors.q.shape), k: (tensors.k.label, tensors.k.shape),
                      v: (tensors.v.label, tensors.v.shape), dO: tensors.dO.map { ($0.label, $0.shape) },
                      mask: mask, scores: scores, budget: budget)
    }

    /// Checks the shapes of the files at the given paths against each other; errors name the
    /// offending file. The rules of a valid problem are the library's (`AttentionProblem`), worded
    /// here by `ProblemSources`.
    init(q: (path: String, shape: [Int]), k: (path: String, shape: [Int]), v: (path: String, shape: [Int]),
         dO: (path: String, shape: [Int])?, mask: MaskOptions, scores: ScoreOptions, budget: MemoryBudget) throws {
        let offsets = try scores.readOffsets()
        // A packed tensor is a fixed-length one without its batch axis.
        let rank = offsets == nil ? 4 : 3
        let layoutName = offsets == nil ? "(batch, seqlen, heads, head_dim)" : "packed (total, heads, head_dim)"
        for tensor in [q, k] where tensor.shape.count != rank {
            throw TensorIOError(tensor.path, "shape \(shapeText(tensor.shape)) is not \(layoutName)")
        }
        let (heads, headDim) = (q.shape[rank - 2], q.shape[rank - 1])
        if offsets == nil, k.shape[0] != q.shape[0] {
            throw TensorIOError(k.path, "shape \(shapeText(k.shape)) does not match q's batch \(q.shape[0])")
        }
        guard k.shape[rank - 1] == headDim else {
            throw TensorIOError(k.path, "shape \(shapeText(k.shape)) does not match q's head dim \(headDim)")
        }
        guard v.shape.count == rank, v.shape.dropLast() == k.shape.dropLast() else {
            throw TensorIOError(v.path, "shape \(shapeText(v.shape)) differs from k's \(shapeText(k.shape)) in more than the head dim")
        }
        let valueHeadDim = v.shape[rank - 1]
        let oShape = Array(q.shape.dropLast()) + [valueHeadDim]
        if let dO, dO.shape != oShape {
            throw TensorIOError(dO.path, "shape \(shapeText(dO.shape)) is not o's \(shapeText(oShape)) (q's with v's head dim)")
        }
        let kvHeads = k.shape[rank - 2]
        let batch = offsets.map { $0.q.count - 1 } ?? q.shape[0]
        // Before the problem, whose offsets alone could be more than the machine holds.
        let rows = { (shape: [Int]) in offsets == nil ? Double(shape[0]) * Double(shape[1]) : Double(shape[0]) }
        // The wider of the two head dims bounds every tensor's size.
        try budget.check(batch: Double(batch), queries: rows(q.shape), keys: rows(k.shape), heads: heads, kvHeads: kvHeads,
                         headDim: max(headDim, valueHeadDim), backward: dO != nil, sinks: scores.sinks != nil, label: q.path)
        let options = scores.attentionOptions(mask, headDim: headDim, slopes: try scores.readSlopes(batch: batch, heads: heads),
                                              sinks: try scores.readSinks(heads: heads))
        do throws(AttentionError) {
            if let offsets {
                problem = try AttentionProblem(heads: heads, kvHeads: kvHeads, headDim: headDim, valueHeadDim: valueHeadDim,
                                               queryOffsets: offsets.q,
                                               keyOffsets: offsets.k, options: options)
            } else {
                problem = try AttentionProblem(batch: batch, seqlenQ: q.shape[1], seqlenK: k.shape[1], heads: heads,
                                               kvHeads: kvHeads, headDim: headDim, valueHeadDim: valueHeadDim, options: options)
            }
        } catch {
            throw ProblemSources(q: q.path, k: k.path, v: v.path, scores: scores).worded(error)
        }
        if let offsets {
            for (ends, rows, path, tensor) in [(offsets.q.last!, q.shape[0], scores.cuSeqlensQ!, "q"),
                                               (offsets.k.last!, k.shape[0], scores.cuSeqlensK!, "k")] where ends != rows {
                throw TensorIOError(path, "offsets end at \(ends), but \(tensor) has \(rows) rows")
            }
        }
        (qShape, kShape, vShape) = (q.shape, k.shape, v.shape)
    }

    /// The outputs of `flashdist attention`, with the backward's when it runs one.
    func attentionOutputs(backward: Bool, saveLSEResidual: Bool) -> [String] {
        ["o", "lse"] + (saveLSEResidual ? ["lse_residual"] : []) + (backward ? backwardOutputs : [])
    }

    /// The outputs of a backward: dsinks too when the problem has sinks.
    var backwardOutputs: [String] { ["dq", "dk", "dv"] + (problem.options.sinks == nil ? [] : ["dsinks"]) }

    /// The named outputs (o, lse, lse_residual, dq, dk, dv, dsinks) with their shapes, and the
    /// dropout mask if asked for.
    func outputs(_ names: [String], dropoutMask: Bool) -> [(name: String, shape: [Int])] {
        let shapes = ["o": oShape, "lse": lseShape, "lse_residual": lseShape, "dq": qShape, "dk": kShape, "dv": vShape,
                      "dsinks": [problem.heads]]
        return names.map { ($0, shapes[$0]!) } + (dropoutMask ? [(DropoutMaskOutput.name, DropoutMaskOutput.shape(self))] : [])
    }
}
