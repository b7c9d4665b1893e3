import Foundation
import TensorIO
import Testing

// `flashdist tune` writes the tuning file; later runs name the tiles they took from it, and give
// the bytes of the fitted tiles; --no-tuning and FLASHDIST_TUNING=off ignore it; a file that
// cannot be used is one warning line and the fitted tiles.

private let tinyBench = ["bench", "--seqlen-q", "96", "--heads", "2", "--head-dim", "16", "--warmup", "0", "--repeats", "1"]

/// The tiles line of a bench report.
private func tilesLine(_ result: CLIResult) -> String {
    result.stdout.split(separator: "\n").first { $0.contains("tiles (") }.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
}

@Test func tuneWritesTheFileAndLaterRunsUseIt() throws {
    let dir = try ScratchDirectory()
    let path = dir.file("cache/tuning.json")
    let tuned = ["FLASHDIST_TUNING": path]
    let tune = try runFlashdist(["tune", "--shape", "64:16", "--shape", "80:16:causal", "--heads", "1", "--rounds", "1", "--threads", "1"],
                                in: dir, environment: tuned)
    #expect(tune.status == 0, "stderr: \(tune.stderr)")
    #expect(tune.stdout.contains("chosen: forward rows") && tune.stdout.contains("written to \(path)"))

    // Rows of 16 everywhere: far from what the caches give, so the run shows it took them.
    var json = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    var entries = try #require(json["entries"] as? [[String: Any]])
    #expect(entries.count == 1)
    entries[0]["tiles"] = ["forward_rows": 16, "backward_rows": 16, "backward_keys": 16]
    json["entries"] = entries
    try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))

    let bench = try runFlashdist(tinyBench, in: dir, environment: tuned)
    #expect(bench.status == 0 && bench.stderr.isEmpty, "stderr: \(bench.stderr)")
    #expect(tilesLine(bench) == "tiles (tuned): forward 16 rows × 64 keys, backward 16 rows × 16 keys")
    for (arguments, environment) in [(["--no-tuning"], tuned), ([], ["FLASHDIST_TUNING": "off"])] {
        let fitted = try runFlashdist(tinyBench + arguments, in: dir, environment: environment)
        #expect(fitted.status == 0 && tilesLine(fitted).hasPrefix("tiles (fitted): forward 64 rows"), "\(arguments) \(environment)")
    }
    let flags = try runFlashdist(tinyBench + ["--block-q", "32"], in: dir, environment: tuned)
    #expect(tilesLine(flags).hasPrefix("tiles (options): forward 32 rows × 64 keys, backward 16 rows"))

    // The same bytes with tuned and fitted tiles: only bit-neutral block sizes are tuned.
    let (b, n, h, d) = (1, 150, 2, 16)
    let inputs = ["--q", try dir.writeFloats("q.npy", pattern(b * n * h * d, seed: 1), shape: [b, n, h, d]),
                  "--k", try dir.writeFloats("k.npy", pattern(b * n * h * d, seed: 2), shape: [b, n, h, d]),
                  "--v", try dir.writeFloats("v.npy", pattern(b * n * h * d, seed: 3), shape: [b, n, h, d]),
                  "--do", try dir.writeFloats("do.npy", pattern(b * n * h * d, seed: 4), shape: [b, n, h, d]), "--causal"]
    let withTiles = try runFlashdist(["attention"] + inputs + ["--out", dir.file("tuned")], in: dir, environment: tuned)
    let without = try runFlashdist(["attention"] + inputs + ["--no-tuning", "--out", dir.file("fitted")], in: dir, environment: tuned)
    #expect(withTiles.status == 0 && without.status == 0, "\(withTiles.stderr) \(without.stderr)")
    for name in ["o", "lse", "dq", "dk", "dv"] {
        let a = try Data(contentsOf: URL(fileURLWithPath: dir.file("tuned/\(name).npy")))
        let b = try Data(contentsOf: URL(fileURLWithPath: dir.file("fitted/\(name).npy")))
        #expect(a == b, "\(name).npy differs between tuned and fitted tiles")
    }
}

@Test func malformedTuningFileIsOneWarning() throws {
    let dir = try ScratchDirectory()
    let path = try dir.write("tuning.json", Data("{\"version\": 1, \"entries\": [".utf8))
    let result = try runFlashdist(tinyBench, in: dir, environment: ["FLASHDIST_TUNING": path])
    #expect(result.status == 0)
    #expect(result.stderrLines == ["flashdist: warning: \(path): not a tuning file (invalid JSON); using tiles fitted to the caches"])
    #expect(tilesLine(result).hasPrefix("tiles (fitted)"))
    // tune replaces a file it cannot read, saying so.
    let tune = try runFlashdist(["tune", "--shape", "32:16", "--heads", "1", "--rounds", "1", "--threads", "1"], in: dir,
                                environment: ["FLASHDIST_TUNING": path])
    #expect(tune.status == 0 && tune.stderrLines == ["flashdist: warning: \(path): not a tuning file (invalid JSON); writing a new one"])
    let after = try runFlashdist(tinyBench, in: dir, environment: ["FLASHDIST_TUNING": path])
    #expect(after.stderr.isEmpty && tilesLine(after).hasPrefix("tiles (tuned)"))
}

@Test func tuneWithoutAFileToWriteIsOneError() throws {
    let dir = try ScratchDirectory()
    let result = try runFlashdist(["tune", "--shape", "32:16", "--rounds", "1"], in: dir, environment: ["FLASHDIST_TUNING": "off"])
    #expect(result.status != 0 && result.stdout.isEmpty)
    #expect(result.stderrLines == ["flashdist: error: FLASHDIST_TUNING=off leaves no tuning file to write: set it to a path or unset it"])
    let shape = try runFlashdist(["tune", "--shape", "32x16"], in: dir, environment: ["FLASHDIST_TUNING": dir.file("t.json")])
    #expect(shape.status != 0 && shape.stderrLines.count == 1 && shape.stderr.contains("--shape"))
    #expect(!FileManager.default.fileExists(atPath: dir.file("t.json")))
    let directory = try runFlashdist(["tune", "--shape", "32:16", "--rounds", "1"], in: dir, environment: ["FLASHDIST_TUNING": dir.path])
    #expect(directory.status != 0 && directory.stderrLines == ["flashdist: error: \(dir.path): is a directory; FLASHDIST_TUNING names the tuning file itself"])
    let bench = try runFlashdist(tinyBench, in: dir, environment: ["FLASHDIST_TUNING": dir.path])
    #expect(bench.status == 0 && bench.stderrLines == ["flashdist: warning: \(dir.path): is a directory, not a tuning file; using tiles fitted to the caches"])
}
