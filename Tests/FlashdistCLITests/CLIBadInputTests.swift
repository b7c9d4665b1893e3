import Foundation
import TensorIO
import Testing

// Every bad input ends the run with a non-zero status and exactly one line on stderr,
// "flashdist: error: …", naming the offending file or option, and leaves no output at all:
// no o.npy, no other file, no temporary.

/// A bad run: what to change from a valid q (1,4,2,8) / k, v (1,5,1,8) / dO problem, and the
/// fragment the error line must contain (a "$name" fragment means that file's path).
struct BadInput: Sendable, CustomTestStringConvertible {
    let testDescription: String
    let fragment: String
    /// Rewrites the valid files or arguments; returns the argument list.
    let setUp: @Sendable (ScratchDirectory, [String: String]) throws -> [String]
}

private func arguments(_ files: [String: String], _ extra: [String] = []) -> [String] {
    ["attention", "--q", files["q"]!, "--k", files["k"]!, "--v", files["v"]!, "--do", files["do"]!] + extra
}

private let badInputs: [BadInput] = [
    BadInput(testDescription: "missing file", fragment: "$missing") { dir, files in
        var files = files
        files["v"] = dir.file("missing.npy")
        return arguments(files)
    },
    BadInput(testDescription: "truncated file", fragment: "$q") { dir, files in
        let bytes = try Data(contentsOf: URL(fileURLWithPath: files["q"]!))
        try dir.write("q.npy", bytes.dropLast(3))
        return arguments(files)
    },
    BadInput(testDescription: "int32 q", fragment: "$q") { dir, files in
        try dir.write("q.npy", Npy.headerBytes(dtype: .int32, shape: [1, 4, 2, 8])
            + [Int32](repeating: 1, count: 64).withUnsafeBytes { Data($0) })
        return arguments(files)
    },
    BadInput(testDescription: "Fortran-order k", fragment: "$k") { dir, files in
        var bytes = try Data(contentsOf: URL(fileURLWithPath: files["k"]!))
        let header = String(decoding: bytes.prefix(64), as: UTF8.self)
        let flipped = header.replacingOccurrences(of: "'fortran_order': False,", with: "'fortran_order': True, ")
        bytes.replaceSubrange(0..<64, with: Data(flipped.utf8))
        try dir.write("k.npy", bytes)
        return arguments(files)
    },
    BadInput(testDescription: "v shaped unlike k", fragment: "$v") { dir, files in
        try dir.writeFloats("v.npy", pattern(48, seed: 9), shape: [1, 6, 1, 8])
        return arguments(files)
    },
    BadInput(testDescription: "batch mismatch", fragment: "$k") { dir, files in
        try dir.writeFloats("k.npy", pattern(80, seed: 9), shape: [2, 5, 1, 8])
        try dir.writeFloats("v.npy", pattern(80, seed: 9), shape: [2, 5, 1, 8])
        return arguments(files)
    },
    BadInput(testDescription: "head dim mismatch", fragment: "$k") { dir, files in
        try dir.writeFloats("k.npy", pattern(20, seed: 9), shape: [1, 5, 1, 4])
        try dir.writeFloats("v.npy", pattern(20, seed: 9), shape: [1, 5, 1, 4])
        return arguments(files)
    },
    BadInput(testDescription: "heads not a multiple of kv heads", fragment: "$k") { dir, files in
        try dir.writeFloats("q.npy", pattern(96, seed: 9), shape: [1, 4, 3, 8])
        try dir.writeFloats("do.npy", pattern(96, seed: 9), shape: [1, 4, 3, 8])
        try dir.writeFloats("k.npy", pattern(80, seed: 9), shape: [1, 5, 2, 8])
        try dir.writeFloats("v.npy", pattern(80, seed: 9), shape: [1, 5, 2, 8])
        return arguments(files)
    },
    BadInput(testDescription: "dO shaped unlike q", fragment: "$do") { dir, files in
        try dir.writeFloats("do.npy", pattern(32, seed: 9), shape: [1, 2, 2, 8])
        return arguments(files)
    },
    // v with a head dim of its own makes o, and so dO, that wide: q's head dim is wrong for dO.
    BadInput(testDescription: "dO with q's head dim when v has its own", fragment: "$do") { dir, files in
        try dir.writeFloats("v.npy", pattern(30, seed: 9), shape: [1, 5, 1, 6])
        return arguments(files)
    },
    BadInput(testDescription: "backward: o with q's head dim when v has its own", fragment: "$o") { dir, files in
        let dO = try dir.writeFloats("do.npy", pattern(48, seed: 9), shape: [1, 4, 2, 6])
        return ["backward", "--q", files["q"]!, "--k", files["k"]!, "--v", try dir.writeFloats("v.npy", pattern(30, seed: 9), shape: [1, 5, 1, 6]),
                "--o", try dir.writeFloats("o.npy", pattern(64, seed: 9), shape: [1, 4, 2, 8]),
                "--lse", try dir.writeFloats("lse.npy", pattern(8, seed: 9), shape: [1, 2, 4]), "--do", dO]
    },
    BadInput(testDescription: "v head dim 257", fragment: "$v") { dir, files in
        try dir.writeFloats("v.npy", pattern(5 * 257, seed: 9), shape: [1, 5, 1, 257])
        try dir.writeFloats("do.npy", pattern(8 * 257, seed: 9), shape: [1, 4, 2, 257])
        return arguments(files)
    },
    BadInput(testDescription: "q not 4-D", fragment: "$q") { dir, files in
        try dir.writeFloats("q.npy", pattern(64, seed: 9), shape: [4, 2, 8])
        return arguments(files)
    },
    BadInput(testDescription: "head dim 300", fragment: "$q") { dir, files in
        for name in ["q", "do"] { try dir.writeFloats("\(name).npy", pattern(8 * 300, seed: 9), shape: [1, 4, 2, 300]) }
        for name in ["k", "v"] { try dir.writeFloats("\(name).npy", pattern(5 * 300, seed: 9), shape: [1, 5, 1, 300]) }
        return arguments(files)
    },
    BadInput(testDescription: "--window -2,0", fragment: "window") { _, files in arguments(files, ["--window", "-2,0"]) },
    BadInput(testDescription: "--window 3", fragment: "--window") { _, files in arguments(files, ["--window", "3"]) },
    BadInput(testDescription: "--softmax-scale nan", fragment: "scale") { _, files in
        arguments(files, ["--softmax-scale", "nan"])
    },
    BadInput(testDescription: "--threads 0", fragment: "--threads") { _, files in arguments(files, ["--threads", "0"]) },
    BadInput(testDescription: "--softcap -1", fragment: "--softcap") { _, files in arguments(files, ["--softcap", "-1"]) },
    BadInput(testDescription: "--dropout 1", fragment: "--dropout") { _, files in arguments(files, ["--dropout", "1"]) },
    BadInput(testDescription: "--save-dropout-mask without dropout", fragment: "--save-dropout-mask") { _, files in
        arguments(files, ["--save-dropout-mask"])
    },
    BadInput(testDescription: "dropout mask above the size limit", fragment: "--save-dropout-mask") { dir, files in
        try dir.writeFloats("q.npy", pattern(8200, seed: 9), shape: [1, 8200, 1, 1])
        try dir.writeFloats("do.npy", pattern(8200, seed: 9), shape: [1, 8200, 1, 1])
        try dir.writeFloats("k.npy", pattern(8200, seed: 9), shape: [1, 8200, 1, 1])
        try dir.writeFloats("v.npy", pattern(8200, seed: 9), shape: [1, 8200, 1, 1])
        return arguments(files, ["--dropout", "0.5", "--save-dropout-mask"])
    },
    BadInput(testDescription: "ALiBi slopes of the wrong shape", fragment: "$slopes") { dir, files in
        arguments(files, ["--alibi-slopes", try dir.writeFloats("slopes.npy", [1, 2, 3], shape: [3])])
    },
    BadInput(testDescription: "sinks of the wrong shape", fragment: "$sinks") { dir, files in
        arguments(files, ["--sinks", try dir.writeFloats("sinks.npy", [1, 2, 3], shape: [3])])
    },
    BadInput(testDescription: "sinks shaped (1, heads)", fragment: "$sinks") { dir, files in
        arguments(files, ["--sinks", try dir.writeFloats("sinks.npy", [1, 2], shape: [1, 2])])
    },
    BadInput(testDescription: "int32 sinks", fragment: "$sinks") { dir, files in
        try dir.write("sinks.npy", Npy.headerBytes(dtype: .int32, shape: [2]) + [Int32](repeating: 1, count: 2).withUnsafeBytes { Data($0) })
        return arguments(files, ["--sinks", dir.file("sinks.npy")])
    },
    BadInput(testDescription: "infinite sink", fragment: "$sinks") { dir, files in
        arguments(files, ["--sinks", try dir.writeFloats("sinks.npy", [1, .infinity], shape: [2])])
    },
    BadInput(testDescription: "backward: lse residual of the wrong shape", fragment: "$residual") { dir, files in
        ["backward", "--q", files["q"]!, "--k", files["k"]!, "--v", files["v"]!, "--do", files["do"]!,
         "--o", try dir.writeFloats("o.npy", pattern(64, seed: 5), shape: [1, 4, 2, 8]),
         "--lse", try dir.writeFloats("lse.npy", pattern(8, seed: 6), shape: [1, 2, 4]),
         "--lse-residual", try dir.writeFloats("residual.npy", pattern(8, seed: 7), shape: [1, 4, 2])]
    },
    BadInput(testDescription: "--cu-seqlens-q alone", fragment: "--cu-seqlens-k") { dir, files in
        arguments(files, ["--cu-seqlens-q", try writeOffsets(dir, "cuq.npy", [0, 4])])
    },
    BadInput(testDescription: "varlen with 4-D q", fragment: "$q") { dir, files in
        arguments(files, ["--cu-seqlens-q", try writeOffsets(dir, "cuq.npy", [0, 4]), "--cu-seqlens-k", try writeOffsets(dir, "cuk.npy", [0, 5])])
    },
    BadInput(testDescription: "cu_seqlens not starting at 0", fragment: "$cuq") { dir, files in
        try packed(dir, files, cuQ: [1, 4], cuK: [0, 5])
    },
    BadInput(testDescription: "cu_seqlens decreasing", fragment: "$cuk") { dir, files in
        try packed(dir, files, cuQ: [0, 2, 4], cuK: [0, 3, 2, 5])
    },
    BadInput(testDescription: "cu_seqlens ending before the rows", fragment: "$cuq") { dir, files in
        try packed(dir, files, cuQ: [0, 3], cuK: [0, 5])
    },
    BadInput(testDescription: "cu_seqlens of different batch sizes", fragment: "$cuk") { dir, files in
        try packed(dir, files, cuQ: [0, 4], cuK: [0, 2, 5])
    },
    BadInput(testDescription: "float cu_seqlens", fragment: "$cuq") { dir, files in
        var args = try packed(dir, files, cuQ: [0, 4], cuK: [0, 5])
        args[args.firstIndex(of: dir.file("cuq.npy"))!] = try dir.writeFloats("cuq.npy", [0, 4], shape: [2])
        return args
    },
    BadInput(testDescription: "output under a regular file", fragment: "$plain/out") { dir, files in
        try dir.write("plain", Data([1]))
        return arguments(files) + ["--out", dir.file("plain/out")]
    },
]

/// The valid problem packed as one sequence, (4, 2, 8) and (5, 1, 8), with the given offsets.
private func packed(_ dir: ScratchDirectory, _ files: [String: String], cuQ: [Int32], cuK: [Int32]) throws -> [String] {
    for (name, rows, heads) in [("q", 4, 2), ("do", 4, 2), ("k", 5, 1), ("v", 5, 1)] {
        try dir.writeFloats("\(name).npy", pattern(rows * heads * 8, seed: 9), shape: [rows, heads, 8])
    }
    return arguments(files, ["--cu-seqlens-q", try writeOffsets(dir, "cuq.npy", cuQ),
                             "--cu-seqlens-k", try writeOffsets(dir, "cuk.npy", cuK)])
}

@Test("bad input: one error line, no outputs", arguments: badInputs)
func badInputFails(_ bad: BadInput) throws {
    let dir = try ScratchDirectory()
    let files = ["q": try dir.writeFloats("q.npy", pattern(64, seed: 1), shape: [1, 4, 2, 8]),
                 "k": try dir.writeFloats("k.npy", pattern(40, seed: 2), shape: [1, 5, 1, 8]),
                 "v": try dir.writeFloats("v.npy", pattern(40, seed: 3), shape: [1, 5, 1, 8]),
                 "do": try dir.writeFloats("do.npy", pattern(64, seed: 4), shape: [1, 4, 2, 8])]
    let out = dir.file("out")
    var args = try bad.setUp(dir, files)
    if !args.contains("--out") { args += ["--out", out] }
    let result = try runFlashdist(args, in: dir)

    #expect(result.status != 0)
    #expect(result.stdout.isEmpty)
    #expect(result.stderrLines.count == 1, "stderr: \(result.stderr)")
    #expect(result.stderr.hasPrefix("flashdist: error:"), "stderr: \(result.stderr)")
    let fragment = bad.fragment.hasPrefix("$") ? dir.file(bad.fragment.dropFirst() + (bad.fragment.contains("/") ? "" : ".npy"))
                                               : bad.fragment
    #expect(result.stderr.contains(fragment), "stderr should name \(fragment): \(result.stderr)")
    // Nothing was written: the directory is absent or empty (no o.npy, no temporaries).
    #expect((dir.entries(out) ?? []).isEmpty)
    if args.contains(dir.file("plain/out")) {
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir.file("plain"))) == Data([1]))
    }
}

/// A failed run must not disturb the results of an earlier successful run in the same directory.
@Test func failedRunKeepsEarlierOutputs() throws {
    let dir = try ScratchDirectory()
    let q = try dir.writeFloats("q.npy", pattern(16, seed: 1), shape: [1, 2, 1, 8])
    let k = try dir.writeFloats("k.npy", pattern(24, seed: 2), shape: [1, 3, 1, 8])
    let v = try dir.writeFloats("v.npy", pattern(24, seed: 3), shape: [1, 3, 1, 8])
    let out = dir.file("out")
    #expect(try runFlashdist(["attention", "--q", q, "--k", k, "--v", v, "--out", out], in: dir).status == 0)
    let before = try Data(contentsOf: URL(fileURLWithPath: "\(out)/o.npy"))
    let failed = try runFlashdist(["attention", "--q", q, "--k", k, "--v", dir.file("nope.npy"), "--out", out], in: dir)
    #expect(failed.status != 0)
    #expect(try OutputDirectory.verifiedSet(in: out) == ["lse.npy", "o.npy"])
    #expect(try Data(contentsOf: URL(fileURLWithPath: "\(out)/o.npy")) == before)
}
