import ArgumentParser
import TensorIO

/// Where the input tensors come from: one .npy file each, or the entries of one safetensors file
/// (a .npy option given alongside overrides that entry).
struct InputFiles: ParsableArguments {
    @Option(help: "Queries, (batch, seqlen_q, heads, head_dim) .npy: float32, float16, bfloat16 (<V2) or float64.")
    var q: String?
    @Option(help: "Keys, (batch, seqlen_k, kv_heads, head_dim).")
    var k: String?
    @Option(help: "Values, (batch, seqlen_k, kv_heads, head_dim_v): k's shape, with a head dim of their own (1...256).")
    var v: String?
    @Option(help: "A .safetensors file holding q, k, v (and do; for `backward` also o and lse) instead of the .npy options; F32, F16, BF16 or F64.")
    var input: String?

    func validate() throws {
        guard input != nil || (q != nil && k != nil && v != nil) else {
            throw ValidationError("give --q, --k and --v, or --input FILE.safetensors")
        }
    }

    /// Tensor `name`: the .npy at `path` when given, else the entry `name` of --input, else nil.
    func tensor(_ name: String, path: String?) throws -> StoredTensor? {
        if let path { return try StoredTensor.npy(path) }
        return try input.flatMap { try Safetensors.readTensors($0)[name] }
    }

    /// Tensor `name`, which the command needs.
    func required(_ name: String, path: String?) throws -> StoredTensor {
        guard let tensor = try tensor(name, path: path) else {
            throw input.map { TensorIOError($0, "holds no tensor '\(name)' (and no --\(name) was given)") }
                ?? ValidationError("--\(name) is required")
        }
        return tensor
    }

    /// q, k and v.
    func attentionInputs() throws -> (q: StoredTensor, k: StoredTensor, v: StoredTensor) {
        (try required("q", path: q), try required("k", path: k), try required("v", path: v))
    }
}
