import Foundation
import TensorIO
import TensorSlices
import Testing

// safetensors: what the writer's header says is read back exactly, entries are read in every
// supported dtype, and each kind of malformed header is one clear error naming the file.

/// A safetensors file from header JSON text and data bytes.
private func safetensorsFile(_ json: String, data: [UInt8] = [], length: UInt64? = nil) -> Data {
    let count = length ?? UInt64(json.utf8.count)
    return Data((0..<8).map { UInt8(truncatingIfNeeded: count >> (8 * UInt64($0))) }) + Data(json.utf8) + Data(data)
}

@Test func writtenHeaderReadsBackWithEveryDtype() throws {
    let dir = try ScratchDirectory()
    let values: [Float] = [1.5, -2.25, 0.1, 3e4, -0.0, 65504]
    let tensors: [(name: String, dtype: ElementType, shape: [Int])] =
        [("q", .float32, [2, 3]), ("k", .float16, [6]), ("v", .bfloat16, [3, 2]), ("do", .float64, [1, 6])]
    let (header, offsets) = Safetensors.header(tensors)
    #expect(header.count % 8 == 0)
    var file = header
    for tensor in tensors { file += values.withUnsafeBufferPointer { tensor.dtype.encode($0) } }
    let path = try dir.write("t.safetensors", file)
    let read = try Safetensors.readTensors(path)
    #expect(Set(read.keys) == ["q", "k", "v", "do"])
    for (tensor, offset) in zip(tensors, offsets) {
        let stored = try #require(read[tensor.name])
        #expect(stored.shape == tensor.shape && stored.dtype == tensor.dtype && stored.dataOffset == offset)
        #expect(stored.label == "\(path)[\(tensor.name)]")
        let expected: [Float] = switch tensor.dtype {
        case .float16: values.map { Float(Float16($0)) }
        case .bfloat16: [1.5, -2.25, 0.10009765625, 29952, -0.0, 65536]
        default: values
        }
        #expect(try stored.readFloats().map(\.bitPattern) == expected.map(\.bitPattern), "\(tensor.name)")
    }
}

@Test func metadataIsAcceptedAndSlicesReadOnlyTheirPart() throws {
    let dir = try ScratchDirectory()
    let json = #"{"__metadata__":{"format":"pt"},"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}"#
    let values: [Float] = [0, 1, 2, 3, 4, 5]
    let path = try dir.write("m.safetensors", safetensorsFile(json, data: Array(rawBytes(values))))
    let x = try #require(try Safetensors.readTensors(path)["x"])
    #expect(try x.readFloats(slice: AxisSlice(shape: [2, 3], axis: 1, range: 1..<3)) == [1, 2, 4, 5])
}

private let entry = #""dtype":"F32","shape":[2],"data_offsets":[0,8]"#

private let malformed: [(String, Data, String)] = [
    ("shorter than the length field", Data([1, 2, 3]), "truncated"),
    ("huge header length", safetensorsFile("{}", length: UInt64.max), "header length"),
    ("header length past the file", safetensorsFile("{}", length: 4096), "header length"),
    ("bad JSON", safetensorsFile(#"{"x":{"dtype":"F32""#), "not valid JSON"),
    ("JSON that is not an object", safetensorsFile("[1, 2]"), "not a JSON object"),
    ("unknown dtype", safetensorsFile(#"{"x":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8)), "unsupported dtype I32"),
    ("offsets not matching dtype × shape", safetensorsFile(#"{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 12)), "needs 12"),
    ("offsets past the data", safetensorsFile("{\"x\":{\(entry)}}", data: Array(repeating: 0, count: 4)), "run past"),
    ("begin after end", safetensorsFile(#"{"x":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#, data: Array(repeating: 0, count: 8)), "data_offsets"),
    ("overlapping tensors", safetensorsFile(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, data: Array(repeating: 0, count: 12)), "overlap"),
    ("duplicate names", safetensorsFile("{\"x\":{\(entry)},\"x\":{\(entry)}}", data: Array(repeating: 0, count: 8)), "twice"),
    ("negative dimension", safetensorsFile(#"{"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8)), "shape"),
    ("shape whose size overflows", safetensorsFile(#"{"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}"#, data: Array(repeating: 0, count: 8)), "too large"),
    ("deep nesting", safetensorsFile(String(repeating: "[", count: 100_000)), "nesting"),
    ("metadata that is not strings", safetensorsFile(#"{"__metadata__":{"n":1}}"#), "__metadata__"),
]

@Test("malformed safetensors: one clear error", arguments: malformed.indices)
func malformedHeaderIsAnError(_ index: Int) throws {
    let (_, bytes, fragment) = malformed[index]
    let dir = try ScratchDirectory()
    let path = try dir.write("bad.safetensors", bytes)
    do {
        _ = try Safetensors.readTensors(path)
        Issue.record("\(malformed[index].0): expected an error mentioning \"\(fragment)\"")
    } catch {
        #expect(error.path.hasPrefix(path), "\(malformed[index].0)")
        #expect(error.problem.contains(fragment), "\(malformed[index].0): \(error.problem)")
        #expect(!error.description.contains("\n"))
    }
}
