import Foundation
import TensorSlices

/// Hugging Face's safetensors format: an 8-byte little-endian header length N, N bytes of JSON
/// `{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, …}` (and an optional
/// `"__metadata__"` of strings), then the data, each tensor C-order little-endian at its offsets
/// from the end of the header.
public enum Safetensors {
    /// The safetensors library refuses headers above 100 MB; so does this reader, before reading one.
    public static let maximumHeaderLength = 100_000_000

    static let dtypeNames: [String: ElementType] = ["F32": .float32, "F16": .float16, "BF16": .bfloat16, "F64": .float64]

    /// The tensors of the file at `path`, by name, each checked against the file: known dtype,
    /// offsets matching dtype × shape, inside the data, not overlapping another tensor.
    public static func readTensors(_ path: String) throws(TensorIOError) -> [String: StoredTensor] {
        let size = try fileSize(path)
        guard size >= 8 else { throw TensorIOError(path, "truncated: \(size) bytes, a safetensors file starts with an 8-byte header length") }
        let lengthBytes = try readBytes(path, count: 8, at: 0)
        let length = lengthBytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        guard length <= UInt64(min(maximumHeaderLength, size - 8)) else {
            throw TensorIOError(path, "header length \(length) exceeds the \(size - 8) bytes after it (or the 100 MB limit)")
        }
        return try parseHeader(try readBytes(path, count: Int(length), at: 8), dataSize: size - 8 - Int(length), path: path)
    }

    /// The tensors a header describes, with their data `dataSize` bytes long after the header.
    static func parseHeader(_ header: [UInt8], dataSize: Int, path: String) throws(TensorIOError) -> [String: StoredTensor] {
        let json: JSONValue
        do { json = try JSONValue.parse(header) } catch { throw TensorIOError(path, "header is not valid JSON: \(error.description)") }
        guard case .object(let members) = json else { throw TensorIOError(path, "header is not a JSON object") }
        var tensors: [String: StoredTensor] = [:]
        var ranges: [(name: String, range: Range<Int>)] = []
        var names = Set<String>()
        for (name, value) in members {
            guard names.insert(name).inserted else { throw TensorIOError(path, "'\(name)' appears twice in the header") }
            if name == "__metadata__" {
                guard case .object(let entries) = value, entries.allSatisfy({ if case .string = $0.value { true } else { false } }) else {
                    throw TensorIOError(path, "__metadata__ must map names to strings")
                }
                continue
            }
            let label = "\(path)[\(name)]"
            let (tensor, range) = try entry(value, label: label, path: path, dataStart: 8 + header.count, dataSize: dataSize)
            tensors[name] = tensor
            ranges.append((name, range))
        }
        let sorted = ranges.filter { !$0.range.isEmpty }.sorted { $0.range.lowerBound < $1.range.lowerBound }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.range.lowerBound < a.range.upperBound {
            throw TensorIOError(path, "tensors '\(a.name)' and '\(b.name)' overlap (data offsets \(a.range) and \(b.range))")
        }
        return tensors
    }

    private static func entry(_ value: JSONValue, label: String, path: String, dataStart: Int,
                              dataSize: Int) throws(TensorIOError) -> (StoredTensor, Range<Int>) {
        guard case .object(let fields) = value else { throw TensorIOError(label, "entry is not a JSON object") }
        func field(_ key: String) -> JSONValue? { fields.first { $0.key == key }?.value }
        guard case .string(let dtypeName) = field("dtype") else { throw TensorIOError(label, "has no \"dtype\" string") }
        guard let dtype = dtypeNames[dtypeName] else {
            throw TensorIOError(label, "unsupported dtype \(dtypeName) (expected F32, F16, BF16 or F64)")
        }
        guard case .array(let dims) = field("shape"), let shape = integers(dims), shape.allSatisfy({ $0 >= 0 }) else {
            throw TensorIOError(label, "has no \"shape\" list of non-negative integers")
        }
        guard case .array(let bounds) = field("data_offsets"), let offsets = integers(bounds), offsets.count == 2,
              offsets[0] >= 0, offsets[0] <= offsets[1] else {
            throw TensorIOError(label, "has no \"data_offsets\" [begin, end] with 0 <= begin <= end")
        }
        guard offsets[1] <= dataSize else {
            throw TensorIOError(label, "data offsets [\(offsets[0]), \(offsets[1])] run past the \(dataSize) data bytes")
        }
        var bytes = dtype.byteCount
        for dim in shape {
            let (product, overflow) = bytes.multipliedReportingOverflow(by: dim)
            guard !overflow else { throw TensorIOError(label, "shape \(shapeText(shape)) is too large") }
            bytes = product
        }
        guard offsets[1] - offsets[0] == bytes else {
            throw TensorIOError(label, "data offsets [\(offsets[0]), \(offsets[1])] hold \(offsets[1] - offsets[0]) bytes, but \(dtypeName) \(shapeText(shape)) needs \(bytes)")
        }
        return (StoredTensor(path: path, label: label, dtype: dtype, shape: shape, dataOffset: dataStart + offsets[0]),
                offsets[0]..<offsets[1])
    }

    private static func integers(_ values: [JSONValue]) -> [Int]? {
        let integers = values.compactMap(\.integer)
        return integers.count == values.count ? integers : nil
    }

    /// The header of a file holding `tensors` one after the other in the given order, padded
    /// with spaces to a multiple of 8 bytes (so the data stays aligned), and each tensor's data
    /// offset from the start of the file.
    public static func header(_ tensors: [(name: String, dtype: ElementType, shape: [Int])]) -> (bytes: Data, offsets: [Int]) {
        var begin = 0
        var entries: [String] = [], begins: [Int] = []
        for tensor in tensors {
            let name = dtypeNames.first { $0.value == tensor.dtype }!.key
            let end = begin + tensor.shape.reduce(tensor.dtype.byteCount, *)
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            entries.append("\"\(tensor.name)\":{\"dtype\":\"\(name)\",\"shape\":[\(shape)],\"data_offsets\":[\(begin),\(end)]}")
            begins.append(begin)
            begin = end
        }
        var json = "{" + entries.joined(separator: ",") + "}"
        json += String(repeating: " ", count: (8 - json.utf8.count % 8) % 8)
        var bytes = Data((0..<8).map { UInt8(truncatingIfNeeded: json.utf8.count >> (8 * $0)) })
        bytes.append(contentsOf: Array(json.utf8))
        return (bytes, begins.map { bytes.count + $0 })
    }
}
