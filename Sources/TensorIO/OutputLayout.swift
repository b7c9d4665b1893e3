import Foundation

/// How a run's outputs are stored: one .npy file per tensor, or all in one safetensors file.
public enum OutputFormat: String, Sendable, CaseIterable {
    case npy, safetensors
}

/// Where each output tensor of a run goes: its file, that file's header, and the byte offset of
/// the tensor's data. Everything is known before any data is written, so every writer (every
/// rank) can put its part straight at its place.
public struct OutputLayout: Sendable {
    public struct Placement: Sendable {
        public let file: String
        public let offset: Int
        public let dtype: ElementType
        public let shape: [Int]
    }

    /// The files in the order they are created, each with its header.
    public let files: [(name: String, header: Data)]
    public let placements: [String: Placement]

    /// The size file `name` has once every tensor placed in it is written.
    public func size(of name: String) -> Int {
        let header = files.first { $0.name == name }!.header.count
        return placements.values.filter { $0.file == name }
            .map { $0.offset + $0.shape.reduce($0.dtype.byteCount, *) }.max() ?? header
    }

    /// The safetensors file's name in the output directory.
    public static let safetensorsName = "out.safetensors"

    /// `tensors` (name, shape, element type) as `NAME.npy` files, or as entries of
    /// `out.safetensors` in the given order.
    public init(_ tensors: [(name: String, shape: [Int], dtype: ElementType)], format: OutputFormat) {
        switch format {
        case .npy:
            files = tensors.map { ("\($0.name).npy", Npy.headerBytes(dtype: $0.dtype, shape: $0.shape)) }
            placements = Dictionary(uniqueKeysWithValues: zip(tensors, files).map { tensor, file in
                (tensor.name, Placement(file: file.name, offset: file.header.count, dtype: tensor.dtype, shape: tensor.shape))
            })
        case .safetensors:
            let (header, offsets) = Safetensors.header(tensors.map { ($0.name, $0.dtype, $0.shape) })
            files = [(Self.safetensorsName, header)]
            placements = Dictionary(uniqueKeysWithValues: zip(tensors, offsets).map { tensor, offset in
                (tensor.name, Placement(file: Self.safetensorsName, offset: offset, dtype: tensor.dtype, shape: tensor.shape))
            })
        }
    }
}
