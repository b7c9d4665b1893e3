import AttentionReference
import Foundation
import TensorIO
import Testing

// The tensor readers on mutated valid files: bit flips, truncations, edited length fields, edited
// header text, appended bytes. Every outcome must be values or a TensorIOError; a crash (trap,
// over-read, runaway allocation) would kill this test run, which is the finding. Bounded in
// iterations and in seconds so CI stays fast; the seed is fixed so a finding reproduces.

/// A valid file and where its length field and header text are.
struct FuzzSeed {
    let bytes: [UInt8]
    let lengthField: Range<Int>
    let headerText: Range<Int>
}

private func npySeeds() -> [FuzzSeed] {
    let values: [Float] = (0..<24).map { Float($0) * 0.37 - 3 }
    return [ElementType.float32, .float16, .bfloat16, .float64].map { dtype in
        let bytes = values.withUnsafeBufferPointer { Npy.encode($0, shape: [2, 3, 4], dtype: dtype) }
        return FuzzSeed(bytes: Array(bytes), lengthField: 8..<10, headerText: 10..<Npy.headerBytes(dtype: dtype, shape: [2, 3, 4]).count)
    }
}

private func safetensorsSeeds() -> [FuzzSeed] {
    let (header, _) = Safetensors.header([("q", .float32, [2, 3]), ("k", .bfloat16, [3]), ("v", .float16, [2, 2])])
    let data = [UInt8](repeating: 0x3f, count: 24 + 6 + 8)
    let text = Array(String(decoding: header.dropFirst(8), as: UTF8.self).utf8)
    // A second seed with __metadata__, as the safetensors library writes it.
    let withMetadata = Array(#"{"__metadata__":{"format":"pt"},"do":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}"#.utf8)
    let metadataLength = (0..<8).map { UInt8(truncatingIfNeeded: withMetadata.count >> (8 * $0)) }
    return [
        FuzzSeed(bytes: Array(header) + data, lengthField: 0..<8, headerText: 8..<8 + text.count),
        FuzzSeed(bytes: metadataLength + withMetadata + [UInt8](repeating: 0x40, count: 16), lengthField: 0..<8,
                 headerText: 8..<8 + withMetadata.count),
    ]
}

/// One random mutation of `seed`.
private func mutate(_ seed: FuzzSeed, _ random: inout SeededNormals) -> [UInt8] {
    var bytes = seed.bytes
    let jsonish = Array("{}[]\",:0123456789-eE.' ()TrueFalsF4V2<|".utf8)
    switch Int.random(in: 0..<6, using: &random) {
    case 0:
        for _ in 0..<Int.random(in: 1...4, using: &random) {
            bytes[Int.random(in: bytes.indices, using: &random)] ^= 1 << UInt8.random(in: 0..<8, using: &random)
        }
    case 1:
        bytes.removeLast(Int.random(in: 1...bytes.count, using: &random))
    case 2:
        let edit = [0, 1, -1, 255, 1 << 20, Int.max].randomElement(using: &random)!
        let old = seed.lengthField.reversed().reduce(0) { $0 << 8 | Int(bytes[$1]) }
        let value = edit == 0 ? Int.random(in: 0..<Int.max, using: &random) : old &+ edit
        for (i, position) in seed.lengthField.enumerated() { bytes[position] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    case 3:
        for _ in 0..<Int.random(in: 1...3, using: &random) {
            bytes[Int.random(in: seed.headerText, using: &random)] = jsonish.randomElement(using: &random)!
        }
    case 4:
        let position = Int.random(in: seed.headerText, using: &random)
        if Bool.random(using: &random) {
            bytes.insert(jsonish.randomElement(using: &random)!, at: position)
        } else {
            bytes.remove(at: position)
        }
    default:
        bytes += (0..<Int.random(in: 1...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
    }
    return bytes
}

/// Counts how mutated files of `seeds` read: as values, or as a TensorIOError. Any other error
/// is a finding.
private func fuzz(_ seeds: [FuzzSeed], iterations: Int, seconds: Double, seed: UInt64,
                  read: (String) throws -> Void) throws -> (runs: Int, values: Int, errors: Int, findings: [String]) {
    let dir = try ScratchDirectory()
    var random = SeededNormals(seed: seed)
    var (runs, values, errors, findings) = (0, 0, 0, [String]())
    let deadline = Date().addingTimeInterval(seconds)
    while runs < iterations && Date() < deadline {
        let file = dir.file("case-\(runs % 8)")
        let bytes = mutate(seeds[runs % seeds.count], &random)
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        do {
            try read(file)
            values += 1
        } catch is TensorIOError {
            errors += 1
        } catch {
            findings.append("\(error) for bytes \(bytes.prefix(96))")
        }
        runs += 1
    }
    return (runs, values, errors, findings)
}

@Test func npyReaderSurvivesMutatedFiles() throws {
    let result = try fuzz(npySeeds(), iterations: 20_000, seconds: 8, seed: 2026) { path in
        _ = try Npy.readFloats(path)
        _ = try StoredTensor.npy(path).readFloats()
    }
    print("npy fuzz: \(result.runs) iterations, \(result.values) read, \(result.errors) errors, \(result.findings.count) findings")
    #expect(result.runs >= 200)
    #expect(result.findings.isEmpty, "\(result.findings.prefix(3))")
    #expect(result.errors > 0 && result.values > 0)
}

@Test func safetensorsReaderSurvivesMutatedFiles() throws {
    let result = try fuzz(safetensorsSeeds(), iterations: 20_000, seconds: 8, seed: 2027) { path in
        for tensor in try Safetensors.readTensors(path).values { _ = try tensor.readFloats() }
    }
    print("safetensors fuzz: \(result.runs) iterations, \(result.values) read, \(result.errors) errors, \(result.findings.count) findings")
    #expect(result.runs >= 200)
    #expect(result.findings.isEmpty, "\(result.findings.prefix(3))")
    #expect(result.errors > 0 && result.values > 0)
}
