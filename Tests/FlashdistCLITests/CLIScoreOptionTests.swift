import Foundation
import TensorIO
import Testing

// The score options on the command line: a variable-length batch gives each sequence what a run
// on that sequence alone gives, and the dropout mask written is the one the outputs used.

/// Writes an int32 .npy of offsets.
func writeOffsets(_ dir: ScratchDirectory, _ name: String, _ offsets: [Int32]) throws -> String {
    try dir.write(name, Npy.headerBytes(dtype: .int32, shape: [offsets.count]) + offsets.withUnsafeBytes { Data($0) })
}

/// Packed sequences of (3, 5), (0, 2), (4, 4) rows: o, lse, dq of each sequence, and dk, dv of its
/// key rows, match a fixed-length run on that sequence alone with the same softcap and slopes.
@Test func varlenMatchesSequencesRunAlone() throws {
    let dir = try ScratchDirectory()
    let (h, hkv, d) = (2, 1, 8)
    let cuQ: [Int32] = [0, 3, 3, 7], cuK: [Int32] = [0, 5, 7, 11]
    let q = pattern(7 * h * d, seed: 1), k = pattern(11 * hkv * d, seed: 2), v = pattern(11 * hkv * d, seed: 3)
    let dO = pattern(7 * h * d, seed: 4)
    let slopes = try dir.writeFloats("slopes.npy", [0.5, 0.25], shape: [h])
    let options = ["--causal", "--softcap", "2.5", "--alibi-slopes", slopes]
    let packed = try runFlashdist([
        "attention", "--q", try dir.writeFloats("q.npy", q, shape: [7, h, d]),
        "--k", try dir.writeFloats("k.npy", k, shape: [11, hkv, d]), "--v", try dir.writeFloats("v.npy", v, shape: [11, hkv, d]),
        "--do", try dir.writeFloats("do.npy", dO, shape: [7, h, d]),
        "--cu-seqlens-q", try writeOffsets(dir, "cuq.npy", cuQ), "--cu-seqlens-k", try writeOffsets(dir, "cuk.npy", cuK),
        "--out", dir.file("packed"),
    ] + options, in: dir)
    #expect(packed.status == 0, "stderr: \(packed.stderr)")
    let o = try readOutput(dir.file("packed/o.npy"), shape: [7, h, d])
    let lse = try readOutput(dir.file("packed/lse.npy"), shape: [h, 7])
    let dq = try readOutput(dir.file("packed/dq.npy"), shape: [7, h, d])
    let dk = try readOutput(dir.file("packed/dk.npy"), shape: [11, hkv, d])
    // The empty query sequence still owns two keys, which get no gradient.
    #expect(dk[5 * d..<7 * d].allSatisfy { $0 == 0 })
    for s in [0, 2] {
        let (rq, rk) = (Int(cuQ[s])..<Int(cuQ[s + 1]), Int(cuK[s])..<Int(cuK[s + 1]))
        let alone = "alone\(s)"
        let rows = { (x: [Float], r: Range<Int>, width: Int) in Array(x[r.lowerBound * width..<r.upperBound * width]) }
        let result = try runFlashdist([
            "attention", "--q", try dir.writeFloats("q\(s).npy", rows(q, rq, h * d), shape: [1, rq.count, h, d]),
            "--k", try dir.writeFloats("k\(s).npy", rows(k, rk, d), shape: [1, rk.count, hkv, d]),
            "--v", try dir.writeFloats("v\(s).npy", rows(v, rk, d), shape: [1, rk.count, hkv, d]),
            "--do", try dir.writeFloats("do\(s).npy", rows(dO, rq, h * d), shape: [1, rq.count, h, d]),
            "--out", dir.file(alone),
        ] + options, in: dir)
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let close = { (a: [Float], b: [Float]) in a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-6 } }
        #expect(close(rows(o, rq, h * d), try readOutput(dir.file("\(alone)/o.npy"), shape: [1, rq.count, h, d])))
        #expect(close(rows(dq, rq, h * d), try readOutput(dir.file("\(alone)/dq.npy"), shape: [1, rq.count, h, d])))
        #expect(close(rows(dk, rk, d), try readOutput(dir.file("\(alone)/dk.npy"), shape: [1, rk.count, hkv, d])))
        let lseAlone = try readOutput(dir.file("\(alone)/lse.npy"), shape: [1, h, rq.count])
        for head in 0..<h {
            #expect(close(Array(lse[head * 7 + rq.lowerBound..<head * 7 + rq.upperBound]),
                          Array(lseAlone[head * rq.count..<(head + 1) * rq.count])))
        }
    }
}

/// With one key per query, attention is that key's value, so under dropout o is the saved mask's
/// factor times v: the mask written is the one applied. Factors are 0 or 1/(1 − p), and about p
/// of them are 0 (binomial bound, 5 standard deviations).
@Test func savedDropoutMaskIsTheOneApplied() throws {
    let dir = try ScratchDirectory()
    let (b, nq, h, d, p) = (2, 200, 3, 4, Float(0.3))
    let q = pattern(b * nq * h * d, seed: 1), k = pattern(b * d, seed: 2), v = pattern(b * d, seed: 3)
    let out = dir.file("out")
    let result = try runFlashdist([
        "attention", "--q", try dir.writeFloats("q.npy", q, shape: [b, nq, h, d]),
        "--k", try dir.writeFloats("k.npy", k, shape: [b, 1, 1, d]), "--v", try dir.writeFloats("v.npy", v, shape: [b, 1, 1, d]),
        "--dropout", "0.3", "--seed", "11", "--save-dropout-mask", "--out", out,
    ], in: dir)
    #expect(result.status == 0, "stderr: \(result.stderr)")
    #expect(try OutputDirectory.verifiedSet(in: out) == ["dropout_mask.npy", "lse.npy", "o.npy"])
    let mask = try readOutput("\(out)/dropout_mask.npy", shape: [b, h, nq, 1])
    let kept = 1 / (1 - p)
    #expect(mask.allSatisfy { $0 == 0 || $0 == kept })
    let dropped = Double(mask.filter { $0 == 0 }.count), n = Double(mask.count)
    #expect(abs(dropped - n * Double(p)) <= 5 * (n * Double(p) * Double(1 - p)).squareRoot())
    let o = try readOutput("\(out)/o.npy", shape: [b, nq, h, d])
    for bi in 0..<b { for i in 0..<nq { for hi in 0..<h { for e in 0..<d {
        let factor = mask[(bi * h + hi) * nq + i]
        #expect(o[((bi * nq + i) * h + hi) * d + e] == factor * v[bi * d + e])
    } } } }
}
