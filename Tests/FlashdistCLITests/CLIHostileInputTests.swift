import Foundation
import TensorIO
import Testing

// What a hostile review found (issue 9), one test per finding that a single process shows: each
// bad input is one `flashdist: error: <file or option>: …` line and a non-zero exit (never a
// trap), and each odd-but-valid input gives the right answer.

/// A .npy header with no data: any shape whose element count is zero.
private func headerOnly(_ dir: ScratchDirectory, _ name: String, shape: [Int]) throws -> String {
    try dir.write(name, Npy.headerBytes(dtype: .float32, shape: shape))
}

/// Runs flashdist expecting one error line that starts with `prefix` and holds `fragment`.
private func expectOneError(_ arguments: [String], in dir: ScratchDirectory, prefix: String, _ fragment: String,
                            sourceLocation: SourceLocation = #_sourceLocation) throws {
    let result = try runFlashdist(arguments, in: dir)
    #expect(result.status != 0 && result.status < 128, "exit \(result.status)", sourceLocation: sourceLocation)
    #expect(result.stderrLines.count == 1, "\(result.stderr)", sourceLocation: sourceLocation)
    #expect(result.stderr.hasPrefix("flashdist: error: \(prefix)") && result.stderr.contains(fragment),
            "\(result.stderr)", sourceLocation: sourceLocation)
}

// Finding 2: zero-size inputs with huge dimensions are refused from the shapes, before any
// allocation; a zero-size input of sane dimensions runs and writes empty outputs.
@Test func hugeZeroSizeShapesAreRefusedUpFront() throws {
    let dir = try ScratchDirectory()
    for shape in [[1 << 40, 0, 2, 16], [1, 0, 1 << 40, 16]] {
        let q = try headerOnly(dir, "q.npy", shape: shape)
        try expectOneError(["attention", "--q", q, "--k", q, "--v", q, "--do", q, "--out", dir.file("out")],
                           in: dir, prefix: "\(q): ", "of memory")
        #expect(dir.entries(dir.file("out")) == nil)
    }
}

@Test func zeroLengthSequencesRunAndWriteEmptyOutputs() throws {
    let dir = try ScratchDirectory()
    let q = try headerOnly(dir, "q.npy", shape: [3, 0, 2, 16])
    let k = try dir.writeFloats("k.npy", pattern(3 * 5 * 16, seed: 1), shape: [3, 5, 1, 16])
    let out = dir.file("out")
    let result = try runFlashdist(["attention", "--q", q, "--k", k, "--v", k, "--do", q, "--out", out], in: dir)
    #expect(result.status == 0, "\(result.stderr)")
    #expect(try readOutput("\(out)/o.npy", shape: [3, 0, 2, 16]).isEmpty)
    #expect(try readOutput("\(out)/lse.npy", shape: [3, 2, 0]).isEmpty)
    // No query attends, so no gradient reaches k or v.
    #expect(try readOutput("\(out)/dk.npy", shape: [3, 5, 1, 16]).allSatisfy { $0 == 0 })
}

// Finding 3: a window side of any size up to Int.max is unbounded, not an all-masked result.
@Test func hugeWindowGivesFullAttention() throws {
    let dir = try ScratchDirectory()
    let q = try dir.writeFloats("q.npy", pattern(2 * 9 * 2 * 8, seed: 1), shape: [2, 9, 2, 8])
    let k = try dir.writeFloats("k.npy", pattern(2 * 7 * 2 * 8, seed: 2), shape: [2, 7, 2, 8])
    let v = try dir.writeFloats("v.npy", pattern(2 * 7 * 2 * 8, seed: 3), shape: [2, 7, 2, 8])
    let max = String(Int.max)
    for (window, causal, same) in [("\(max),\(max)", false, "-1,-1"), ("\(max),0", false, "-1,0"),
                                   ("0,\(max)", false, "0,-1"), ("\(max),-1", true, "-1,-1")] {
        var outputs: [[Float]] = []
        for (name, value) in [("huge", window), ("unbounded", same)] {
            let out = dir.file(name)
            let result = try runFlashdist(["attention", "--q", q, "--k", k, "--v", v, "--window", value, "--out", out]
                                          + (causal ? ["--causal"] : []), in: dir)
            #expect(result.status == 0, "\(result.stderr)")
            outputs.append(try readOutput("\(out)/o.npy", shape: [2, 9, 2, 8]))
        }
        #expect(outputs[0] == outputs[1], "--window \(window)")
        #expect(outputs[0].contains { $0 != 0 }, "--window \(window)")
    }
}

// Finding 8: bench sizes that cannot fit are one error naming the options, not a trap or an
// allocation abort; sizes below 1 name their option.
@Test func benchRefusesSizesThatCannotFit() throws {
    let dir = try ScratchDirectory()
    try expectOneError(["bench", "--seqlen-q", String(Int.max)], in: dir, prefix: "--batch 1 --seqlen-q \(Int.max)", "of memory")
    try expectOneError(["bench", "--batch", "100000000", "--seqlen-q", "100000000"], in: dir, prefix: "--batch 100000000", "of memory")
    try expectOneError(["bench", "--batch", "0"], in: dir, prefix: "--batch: ", "at least 1")
    try expectOneError(["bench", "--seqlen-q", "-3"], in: dir, prefix: "--seqlen-q: ", "at least 1")
}

// Finding 9: the smaller ones, each now one error line that names its file or option.
@Test func smallerFindingsNameTheirFileOrOption() throws {
    let dir = try ScratchDirectory()
    let q = try dir.writeFloats("q.npy", pattern(64, seed: 1), shape: [1, 4, 2, 8])
    let k = try dir.writeFloats("k.npy", pattern(40, seed: 2), shape: [1, 5, 1, 8])
    let inputs = ["attention", "--q", q, "--k", k, "--v", k, "--out", dir.file("out")]
    try expectOneError(inputs + ["--threads", "-1"], in: dir, prefix: "--threads: ", "at least 1, got -1")
    try expectOneError(inputs + ["--threads", String(Int.max)], in: dir, prefix: "--threads: ", "at most 4096")
    try expectOneError(inputs + ["--dropout", "0.999999999"], in: dir, prefix: "--dropout: ", "0.999999999 rounds to 1")
    try expectOneError(inputs + ["--seed", "3"], in: dir, prefix: "--seed: ", "without --dropout")
    try expectOneError(inputs + ["--softmax-scale", "nan"], in: dir, prefix: "--softmax-scale: ", "finite")
    // A batch of 0 is a problem of q's shape, and says so.
    let empty = try headerOnly(dir, "empty.npy", shape: [0, 4, 2, 8])
    try expectOneError(["attention", "--q", empty, "--k", empty, "--v", empty, "--out", dir.file("out")], in: dir,
                       prefix: "\(empty): ", "batch must be at least 1")
    // A FIFO is named as one, not opened (which would block) or called a permission problem.
    let fifo = dir.file("fifo.npy")
    #expect(mkfifo(fifo, 0o644) == 0)
    try expectOneError(["attention", "--q", fifo, "--k", k, "--v", k, "--out", dir.file("out")], in: dir,
                       prefix: "\(fifo): ", "is a FIFO")
    #expect(dir.entries(dir.file("out")) == nil)
}
