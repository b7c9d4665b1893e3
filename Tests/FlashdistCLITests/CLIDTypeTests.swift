import Foundation
import TensorIO
import Testing

// float16 and float64 inputs are converted to float32 on load. So a run on float16/float64 files
// must equal, bit for bit, a run on float32 files holding the converted values, and stay within
// float16 rounding (2⁻¹¹ relative per input) of the run on the unrounded float32 values.

@Test func float16AndFloat64InputsAreConverted() throws {
    let dir = try ScratchDirectory()
    let qShape = [2, 9, 2, 12], kShape = [2, 11, 1, 12]
    let q = pattern(qShape.reduce(1, *), seed: 11), k = pattern(kShape.reduce(1, *), seed: 12)
    let v = pattern(kShape.reduce(1, *), seed: 13), dO = pattern(qShape.reduce(1, *), seed: 14)
    let half = { (x: [Float]) in x.map { Float16($0) } }
    let (qHalf, vHalf, dOHalf) = (half(q), half(v), half(dO))

    // Mixed dtypes: q and dO float16, k float64, v float16.
    let mixed = [
        "--q", try dir.write("q16.npy", Npy.headerBytes(dtype: .float16, shape: qShape) + qHalf.withUnsafeBytes { Data($0) }),
        "--k", try dir.write("k64.npy", Npy.headerBytes(dtype: .float64, shape: kShape)
                             + k.map(Double.init).withUnsafeBytes { Data($0) }),
        "--v", try dir.write("v16.npy", Npy.headerBytes(dtype: .float16, shape: kShape) + vHalf.withUnsafeBytes { Data($0) }),
        "--do", try dir.write("do16.npy", Npy.headerBytes(dtype: .float16, shape: qShape) + dOHalf.withUnsafeBytes { Data($0) }),
    ]
    // The same values, already converted, as float32.
    let converted = [
        "--q", try dir.writeFloats("q32.npy", qHalf.map(Float.init), shape: qShape),
        "--k", try dir.writeFloats("k32.npy", k, shape: kShape),
        "--v", try dir.writeFloats("v32.npy", vHalf.map(Float.init), shape: kShape),
        "--do", try dir.writeFloats("do32.npy", dOHalf.map(Float.init), shape: qShape),
    ]
    // The original, unrounded float32 values.
    let original = [
        "--q", try dir.writeFloats("q.npy", q, shape: qShape), "--k", try dir.writeFloats("k.npy", k, shape: kShape),
        "--v", try dir.writeFloats("v.npy", v, shape: kShape), "--do", try dir.writeFloats("do.npy", dO, shape: qShape),
    ]
    let names = ["o.npy", "lse.npy", "dq.npy", "dk.npy", "dv.npy"]
    func run(_ inputs: [String], _ name: String) throws -> [[Float]] {
        let result = try runFlashdist(["attention", "--causal"] + inputs + ["--out", dir.file(name)], in: dir)
        #expect(result.status == 0, "\(name): \(result.stderr)")
        return try names.map { try Npy.readFloats(dir.file("\(name)/\($0)")).values }
    }
    let fromMixed = try run(mixed, "mixed"), fromConverted = try run(converted, "converted")
    let fromOriginal = try run(original, "original")
    for (name, (a, b)) in zip(names, zip(fromMixed, fromConverted)) {
        #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "\(name) differs from the float32 run on the same values")
    }
    // Inputs of size ≤ 1.5 rounded by ≤ 2⁻¹² each move outputs of size ~1 by a few 1e-4 at most.
    for (name, (a, b)) in zip(names, zip(fromMixed, fromOriginal)) {
        let error = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        let scale = b.map(abs).max().map { max(1, $0) } ?? 1
        #expect(error <= 4e-3 * scale && error > 0, "\(name): \(error)")
    }
}
