import Foundation
import TensorIO
import Testing

// `flashdist attention` end to end on problems small enough to know the answer by hand, checking
// the shapes and values of every output file and that nothing else is left in the directory.

/// With one key every row gives it probability 1: O is that key's V row exactly, lse is
/// scale·q·k, dS = 0 so dQ = dK = 0, and dV is the sum of dO over every row and head reading it.
/// With v's head dim (`dv`) equal to q's and k's, and with one of its own: o, do, dv follow v.
@Test(arguments: [4, 7])
func singleKeyForwardAndBackward(dv: Int) throws {
    let dir = try ScratchDirectory()
    let (b, nq, h, d) = (2, 3, 2, 4)
    let q = pattern(b * nq * h * d, seed: 1), k = pattern(b * d, seed: 2), v = pattern(b * dv, seed: 3)
    let dO = pattern(b * nq * h * dv, seed: 4)
    let out = dir.file("out")
    let result = try runFlashdist([
        "attention", "--q", try dir.writeFloats("q.npy", q, shape: [b, nq, h, d]),
        "--k", try dir.writeFloats("k.npy", k, shape: [b, 1, 1, d]),
        "--v", try dir.writeFloats("v.npy", v, shape: [b, 1, 1, dv]),
        "--do", try dir.writeFloats("do.npy", dO, shape: [b, nq, h, dv]), "--threads", "2", "--out", out,
    ], in: dir)
    #expect(result.status == 0, "stderr: \(result.stderr)")
    #expect(result.stderr.isEmpty)
    #expect(try OutputDirectory.verifiedSet(in: out) == ["dk.npy", "dq.npy", "dv.npy", "lse.npy", "o.npy"])

    let o = try readOutput("\(out)/o.npy", shape: [b, nq, h, dv])
    let lse = try readOutput("\(out)/lse.npy", shape: [b, h, nq])
    let dq = try readOutput("\(out)/dq.npy", shape: [b, nq, h, d])
    let dk = try readOutput("\(out)/dk.npy", shape: [b, 1, 1, d])
    let dvOut = try readOutput("\(out)/dv.npy", shape: [b, 1, 1, dv])
    let scale = 1 / Double(d).squareRoot()
    for bi in 0..<b {
        var dvExpected = [Double](repeating: 0, count: dv)
        for i in 0..<nq {
            for hi in 0..<h {
                let (row, outputRow) = (((bi * nq + i) * h + hi) * d, ((bi * nq + i) * h + hi) * dv)
                #expect(Array(o[outputRow..<outputRow + dv]) == Array(v[bi * dv..<bi * dv + dv]))
                let dot = (0..<d).reduce(0.0) { $0 + Double(q[row + $1]) * Double(k[bi * d + $1]) }
                #expect(abs(Double(lse[(bi * h + hi) * nq + i]) - dot * scale) <= 1e-6 * max(1, abs(dot)))
                for e in 0..<dv { dvExpected[e] += Double(dO[outputRow + e]) }
            }
        }
        for e in 0..<dv { #expect(abs(Double(dvOut[bi * dv + e]) - dvExpected[e]) <= 1e-5) }
    }
    #expect(dq.allSatisfy { abs($0) <= 1e-5 } && dk.allSatisfy { abs($0) <= 1e-5 })
}

/// Two identical keys with different values share the attention equally: O = (v₀ + v₁)/2 and
/// lse = s + log 2. Without --do only o.npy and lse.npy are written.
@Test func twoEqualKeysWithoutBackward() throws {
    let dir = try ScratchDirectory()
    let d = 3
    let q: [Float] = [0.5, -1, 2], key: [Float] = [1, 0.25, -0.5], v: [Float] = [1, 2, 3, -3, 0, 5]
    let out = dir.file("out")
    let result = try runFlashdist([
        "attention", "--q", try dir.writeFloats("q.npy", q, shape: [1, 1, 1, d]),
        "--k", try dir.writeFloats("k.npy", key + key, shape: [1, 2, 1, d]),
        "--v", try dir.writeFloats("v.npy", v, shape: [1, 2, 1, d]), "--softmax-scale", "0.5", "--out", out,
    ], in: dir)
    #expect(result.status == 0, "stderr: \(result.stderr)")
    #expect(try OutputDirectory.verifiedSet(in: out) == ["lse.npy", "o.npy"])
    #expect(try readOutput("\(out)/o.npy", shape: [1, 1, 1, d]) == [-1, 1, 4])
    let lse = try readOutput("\(out)/lse.npy", shape: [1, 1, 1])
    #expect(abs(Double(lse[0]) - (0.5 * (0.5 - 0.25 - 1) + log(2.0))) <= 1e-6)
}

/// The mask and scale options reach the kernels: on 3 queries × 3 keys, causal row 0 and every
/// row of --window 0,0 see only their diagonal key (O = that V row exactly), --window -1,0 is the
/// causal mask, and --softmax-scale 0 averages all V rows.
@Test func maskAndScaleOptions() throws {
    let dir = try ScratchDirectory()
    let (n, d) = (3, 2)
    let q = pattern(n * d, seed: 5), k = pattern(n * d, seed: 6), v = pattern(n * d, seed: 7)
    let inputs = ["attention", "--q", try dir.writeFloats("q.npy", q, shape: [1, n, 1, d]),
                  "--k", try dir.writeFloats("k.npy", k, shape: [1, n, 1, d]),
                  "--v", try dir.writeFloats("v.npy", v, shape: [1, n, 1, d]), "--threads", "1"]
    func o(_ options: [String], _ name: String) throws -> [Float] {
        let result = try runFlashdist(inputs + options + ["--out", dir.file(name)], in: dir)
        #expect(result.status == 0, "\(options): \(result.stderr)")
        return try readOutput(dir.file("\(name)/o.npy"), shape: [1, n, 1, d])
    }
    let causal = try o(["--causal"], "causal")
    #expect(Array(causal[0..<d]) == Array(v[0..<d]))
    // Row 1 of the causal mask: softmax over keys 0 and 1 at the default scale 1/√2, by hand.
    func score(_ j: Int) -> Double {
        var dot = 0.0
        for e in 0..<d { dot += Double(q[d + e]) * Double(k[j * d + e]) }
        return dot / 2.0.squareRoot()
    }
    let s = [score(0), score(1)]
    let p1 = 1 / (1 + exp(s[0] - s[1]))
    for e in 0..<d {
        #expect(abs(Double(causal[d + e]) - ((1 - p1) * Double(v[e]) + p1 * Double(v[d + e]))) <= 1e-6)
    }
    #expect(try o(["--window", "0,0"], "diagonal") == v)
    #expect(try o(["--window", "-1,0"], "leftwindow") == causal)
    let uniform = try o(["--softmax-scale", "0"], "uniform")
    for i in 0..<n {
        for e in 0..<d {
            let mean = (0..<n).reduce(0.0) { $0 + Double(v[$1 * d + e]) } / Double(n)
            #expect(abs(Double(uniform[i * d + e]) - mean) <= 1e-6)
        }
    }
}
