import TensorIO

/// The input tensors of a command, found (headers read, data not yet) in .npy files or a
/// safetensors file.
struct AttentionTensors {
    let q: StoredTensor, k: StoredTensor, v: StoredTensor
    let dO: StoredTensor?

    /// q, k, v, and dO when given (`--do`, or a `do` entry of --input).
    init(_ files: InputFiles, dO: String?, requireDO: Bool) throws {
        (q, k, v) = try files.attentionInputs()
        self.dO = requireDO ? try files.required("do", path: dO) : try files.tensor("do", path: dO)
    }
}
