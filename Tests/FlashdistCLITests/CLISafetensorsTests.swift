import Foundation
import TensorIO
import Testing

// safetensors in and out, and half-precision outputs: the same problem from .npy files and from
// one safetensors file gives the same bytes; --out-format safetensors holds the same values as the
// .npy outputs; --out-dtype rounds the float32 results and nothing else.

private let qShape = [1, 6, 2, 8], kShape = [1, 7, 1, 8]

/// q, k, v, do as .npy files and as one safetensors file (k stored as float16, to mix dtypes).
private func writeInputs(_ dir: ScratchDirectory) throws -> (npy: [String], safetensors: String) {
    let q = pattern(96, seed: 1), k = pattern(56, seed: 2).map { Float(Float16($0)) }, v = pattern(56, seed: 3), dO = pattern(96, seed: 4)
    let npy = ["--q", try dir.writeFloats("q.npy", q, shape: qShape), "--k", try dir.writeFloats("k.npy", k, shape: kShape),
               "--v", try dir.writeFloats("v.npy", v, shape: kShape), "--do", try dir.writeFloats("do.npy", dO, shape: qShape)]
    let tensors: [(name: String, dtype: ElementType, shape: [Int], values: [Float])] =
        [("q", .float32, qShape, q), ("k", .float16, kShape, k), ("v", .float32, kShape, v), ("do", .float32, qShape, dO)]
    var file = Safetensors.header(tensors.map { ($0.name, $0.dtype, $0.shape) }).bytes
    for tensor in tensors { file += tensor.values.withUnsafeBufferPointer { tensor.dtype.encode($0) } }
    return (npy, try dir.write("in.safetensors", file))
}

@Test func safetensorsInputAndOutputMatchNpy() throws {
    let dir = try ScratchDirectory()
    let (npy, input) = try writeInputs(dir)
    let options = ["--causal", "--softcap", "3", "--threads", "2"]
    #expect(try runFlashdist(["attention"] + npy + options + ["--out", dir.file("npy")], in: dir).status == 0)
    let fromSafetensors = try runFlashdist(["attention", "--input", input] + options + ["--out", dir.file("st")], in: dir)
    #expect(fromSafetensors.status == 0, "stderr: \(fromSafetensors.stderr)")
    for name in ["o", "lse", "dq", "dk", "dv"] {
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir.file("npy/\(name).npy")))
                == Data(contentsOf: URL(fileURLWithPath: dir.file("st/\(name).npy"))), "\(name)")
    }
    let out = try runFlashdist(["attention", "--input", input, "--out-format", "safetensors"] + options + ["--out", dir.file("sto")], in: dir)
    #expect(out.status == 0, "stderr: \(out.stderr)")
    #expect(try OutputDirectory.verifiedSet(in: dir.file("sto")) == ["out.safetensors"])
    let written = try Safetensors.readTensors(dir.file("sto/out.safetensors"))
    #expect(Set(written.keys) == ["o", "lse", "dq", "dk", "dv"])
    for (name, tensor) in written {
        #expect(try tensor.readFloats() == Npy.readFloats(dir.file("npy/\(name).npy")).values, "\(name)")
    }
}

@Test(arguments: ["float16", "bfloat16"])
func halfPrecisionOutputsAreRoundedFloat32Results(_ dtype: String) throws {
    let dir = try ScratchDirectory()
    let (npy, _) = try writeInputs(dir)
    #expect(try runFlashdist(["attention"] + npy + ["--out", dir.file("f32")], in: dir).status == 0)
    let half = try runFlashdist(["attention"] + npy + ["--out-dtype", dtype, "--out", dir.file("half")], in: dir)
    #expect(half.status == 0, "stderr: \(half.stderr)")
    let target: ElementType = dtype == "float16" ? .float16 : .bfloat16
    for name in ["o", "lse", "dq", "dk", "dv"] {
        let full = try Npy.readFloats(dir.file("f32/\(name).npy")).values
        let header = try Npy.readHeader(dir.file("half/\(name).npy"))
        // lse stays float32, as flash-attn keeps it.
        let expectedDtype: ElementType = name == "lse" ? .float32 : target
        #expect(header.dtype == expectedDtype, "\(name)")
        let rounded = full.withUnsafeBufferPointer { expectedDtype.encode($0) }
        let stored = try Data(contentsOf: URL(fileURLWithPath: dir.file("half/\(name).npy"))).dropFirst(header.dataOffset)
        #expect(Data(stored) == rounded, "\(name)")
    }
}

@Test func safetensorsInputErrorsNameTheFileAndTensor() throws {
    let dir = try ScratchDirectory()
    let (npy, input) = try writeInputs(dir)
    // No entry k: the error names the file and the missing tensor, and nothing is written.
    var file = Safetensors.header([("q", .float32, qShape)]).bytes
    file += pattern(96, seed: 1).withUnsafeBufferPointer { ElementType.float32.encode($0) }
    let noK = try dir.write("nok.safetensors", file)
    for (arguments, fragment) in [
        (["attention", "--input", noK], "\(noK): holds no tensor 'k'"),
        (["attention", "--input", input, "--k", dir.file("q.npy")], "\(input)[v]"),
        (["backward", "--input", input], "\(input): holds no tensor 'o'"),
        (["attention"] + npy + ["--out-dtype", "int8"], "--out-dtype"),
        (["attention", "--q", npy[1]], "--input"),
    ] {
        let result = try runFlashdist(arguments + ["--out", dir.file("out")], in: dir)
        #expect(result.status != 0 && result.stderrLines.count == 1, "\(arguments): \(result.stderr)")
        #expect(result.stderr.hasPrefix("flashdist: error:") && result.stderr.contains(fragment), "\(result.stderr)")
        #expect((dir.entries(dir.file("out")) ?? []).isEmpty)
    }
}
