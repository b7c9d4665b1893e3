import Foundation
import TensorIO
import Testing

// Attention sinks and lse's residual through the command line, on problems small enough to know
// the answer by hand.

/// One key per batch entry and a sink per head: the key keeps the share σ(a − s) of the row
/// (a = scale·q·k), so O = share·v, lse = log(e^a + e^s), dV = Σ share·dO, dQ = share·(1 − share)·
/// (dO·v)·scale·k (the share moves with the score, unlike without a sink), and
/// dL/ds = −Σ (1 − share)·(dO·O), written as dsinks.npy (heads).
@Test func sinksWithOneKey() throws {
    let dir = try ScratchDirectory()
    let (b, nq, h, d) = (2, 3, 2, 4)
    let q = pattern(b * nq * h * d, seed: 1), k = pattern(b * d, seed: 2), v = pattern(b * d, seed: 3)
    let dO = pattern(b * nq * h * d, seed: 4), sinks: [Float] = [0.75, -2]
    let out = dir.file("out")
    let result = try runFlashdist([
        "attention", "--q", try dir.writeFloats("q.npy", q, shape: [b, nq, h, d]),
        "--k", try dir.writeFloats("k.npy", k, shape: [b, 1, 1, d]),
        "--v", try dir.writeFloats("v.npy", v, shape: [b, 1, 1, d]),
        "--do", try dir.writeFloats("do.npy", dO, shape: [b, nq, h, d]),
        "--sinks", try dir.writeFloats("sinks.npy", sinks, shape: [h]), "--save-lse-residual", "--out", out,
    ], in: dir)
    #expect(result.status == 0, "stderr: \(result.stderr)")
    #expect(try OutputDirectory.verifiedSet(in: out)
            == ["dk.npy", "dq.npy", "dsinks.npy", "dv.npy", "lse.npy", "lse_residual.npy", "o.npy"])
    let o = try readOutput("\(out)/o.npy", shape: [b, nq, h, d])
    let lse = try readOutput("\(out)/lse.npy", shape: [b, h, nq])
    let residual = try readOutput("\(out)/lse_residual.npy", shape: [b, h, nq])
    let dv = try readOutput("\(out)/dv.npy", shape: [b, 1, 1, d])
    let dq = try readOutput("\(out)/dq.npy", shape: [b, nq, h, d])
    let dsinks = try readOutput("\(out)/dsinks.npy", shape: [h])
    let scale = 1 / Double(d).squareRoot()
    var dsinksExpected = [Double](repeating: 0, count: h)
    for bi in 0..<b {
        var dvExpected = [Double](repeating: 0, count: d)
        for i in 0..<nq {
            for hi in 0..<h {
                let row = ((bi * nq + i) * h + hi) * d
                let a = (0..<d).reduce(0.0) { $0 + Double(q[row + $1]) * Double(k[bi * d + $1]) } * scale
                let s = Double(sinks[hi]), share = 1 / (1 + exp(s - a))
                let slot = (bi * h + hi) * nq + i
                #expect(abs(Double(lse[slot]) + Double(residual[slot]) - (max(a, s) + log1p(exp(-abs(a - s))))) <= 1e-6)
                var delta = 0.0
                for e in 0..<d {
                    let expected = share * Double(v[bi * d + e])
                    #expect(abs(Double(o[row + e]) - expected) <= 1e-6)
                    dvExpected[e] += share * Double(dO[row + e])
                    delta += Double(dO[row + e]) * expected
                }
                dsinksExpected[hi] -= (1 - share) * delta
                let dScore = share * (1 - share) * (0..<d).reduce(0.0) { $0 + Double(dO[row + $1]) * Double(v[bi * d + $1]) }
                for e in 0..<d { #expect(abs(Double(dq[row + e]) - dScore * scale * Double(k[bi * d + e])) <= 1e-5) }
            }
        }
        for e in 0..<d { #expect(abs(Double(dv[bi * d + e]) - dvExpected[e]) <= 1e-5) }
    }
    for hi in 0..<h { #expect(abs(Double(dsinks[hi]) - dsinksExpected[hi]) <= 1e-5, "head \(hi)") }
}

/// `flashdist backward` with the saved lse residual gives the bytes of the gradients `attention`
/// computed in one run (dsinks included); without it, the same gradients to float32 rounding.
@Test func backwardWithSavedResidual() throws {
    let dir = try ScratchDirectory()
    let inputs = ["--q", try dir.writeFloats("q.npy", pattern(2 * 9 * 4 * 8, seed: 1).map { $0 * 8 }, shape: [2, 9, 4, 8]),
                  "--k", try dir.writeFloats("k.npy", pattern(2 * 7 * 2 * 8, seed: 2).map { $0 * 8 }, shape: [2, 7, 2, 8]),
                  "--v", try dir.writeFloats("v.npy", pattern(2 * 7 * 2 * 8, seed: 3), shape: [2, 7, 2, 8]),
                  "--do", try dir.writeFloats("do.npy", pattern(2 * 9 * 4 * 8, seed: 4), shape: [2, 9, 4, 8]),
                  "--sinks", try dir.writeFloats("sinks.npy", [1, -1, 3, 0], shape: [4]), "--causal"]
    let (ref, precise, plain) = (dir.file("ref"), dir.file("precise"), dir.file("plain"))
    #expect(try runFlashdist(["attention"] + inputs + ["--save-lse-residual", "--out", ref], in: dir).status == 0)
    let saved = ["--o", "\(ref)/o.npy", "--lse", "\(ref)/lse.npy"]
    let withResidual = try runFlashdist(["backward"] + inputs + saved + ["--lse-residual", "\(ref)/lse_residual.npy", "--out", precise], in: dir)
    #expect(withResidual.status == 0, "stderr: \(withResidual.stderr)")
    #expect(try runFlashdist(["backward"] + inputs + saved + ["--out", plain], in: dir).status == 0)
    #expect(try OutputDirectory.verifiedSet(in: precise) == ["dk.npy", "dq.npy", "dsinks.npy", "dv.npy"])
    for name in ["dq", "dk", "dv", "dsinks"] {
        let expected = try Data(contentsOf: URL(fileURLWithPath: "\(ref)/\(name).npy"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: "\(precise)/\(name).npy")) == expected, "\(name)")
        let (a, b) = (try Npy.readFloats("\(ref)/\(name).npy").values, try Npy.readFloats("\(plain)/\(name).npy").values)
        #expect(zip(a, b).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($0)) }, "\(name) without the residual")
    }
}
