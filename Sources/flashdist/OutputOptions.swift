import ArgumentParser
import TensorIO

/// Where and how a command writes its outputs.
struct OutputOptions: ParsableArguments {
    @Option(help: "Output directory (created if missing); files appear only when all are written.")
    var out: String
    @Option(help: "Element type of o, dq, dk, dv: float32, float16 or bfloat16 (compute is float32; lse, lse_residual, dsinks and the dropout mask stay float32).")
    var outDtype: OutputDType = .float32
    @Option(help: "npy: one NAME.npy per output; safetensors: all in DIR/out.safetensors.")
    var outFormat: OutputFormat = .npy

    /// The layout of `tensors` (name, shape): lse, its residual, dsinks and the dropout mask in
    /// float32, as flash-attn keeps lse, the others in --out-dtype.
    func layout(_ tensors: [(name: String, shape: [Int])]) -> OutputLayout {
        OutputLayout(tensors.map { name, shape in
            (name, shape, ["lse", "lse_residual", "dsinks", DropoutMaskOutput.name].contains(name) ? .float32 : outDtype.dtype)
        }, format: outFormat)
    }
}

enum OutputDType: String, ExpressibleByArgument, CaseIterable {
    case float32, float16, bfloat16

    var dtype: ElementType {
        switch self {
        case .float32: .float32
        case .float16: .float16
        case .bfloat16: .bfloat16
        }
    }
}

extension OutputFormat: ExpressibleByArgument {}
