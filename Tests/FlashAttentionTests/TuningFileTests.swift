import FlashAttention
import Foundation
import Testing

// The tuning file of `flashdist tune`: what is written is read back; a run takes the entry for
// its own CPU model, instruction set and caches and the fitted tiles otherwise; a file it cannot
// use is a warning and the fitted tiles, never an error. Tuned tiles give the fitted tiles' bits.

private let zen3 = CPUInfo(cpuinfo: "model name\t: AMD EPYC 7543 32-Core Processor\ncpu family\t: 25\nmodel\t\t: 1\n",
                           caches: CacheSizes(l1: 32 << 10, l2: 512 << 10, l3: 32 << 20))
private let zen3Tiles = TuningFile.Tiles(forwardRows: 128, backwardRows: 128, backwardKeys: nil)

private func scratchPath() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("tuning-\(UUID().uuidString)/tuning.json").path
}

private func entry(_ cpu: CPUInfo, _ isa: InstructionSet, _ tiles: TuningFile.Tiles) -> TuningFile.Entry {
    TuningFile.Entry(host: TuningFile.Key(cpu: cpu.model, isa: isa, caches: cpu.caches), tiles: tiles,
                     measured: TuningFile.Measurement(date: "2026-12-03T00:00:00Z", shapes: ["2048:64"], threads: 2,
                                                      forwardGain: 1.07, backwardGain: 1))
}

@Test func tuningFileRoundTrips() throws {
    let path = scratchPath()
    defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
    var file = TuningFile(entries: [entry(zen3, .avx2, TuningFile.Tiles(forwardRows: nil, backwardRows: 64, backwardKeys: 64))])
    file.record(entry(zen3, .avx2, zen3Tiles))
    file.record(entry(zen3, .avx512, TuningFile.Tiles(forwardRows: 256, backwardRows: 64, backwardKeys: 128)))
    #expect(file.entries.count == 2, "recording an entry replaces the one for its host")
    try file.write(to: path)
    #expect(try TuningFile.read(from: path) == file)

    let chosen = TuningFile.tiling(for: .avx2, on: zen3, environment: ["FLASHDIST_TUNING": path], ignore: false)
    #expect(chosen.source == .tuned && chosen.warning == nil)
    #expect(chosen.tiling == zen3Tiles.tiling(caches: zen3.caches))
    #expect(chosen.tiling.forwardRows == 128 && chosen.tiling.backwardRows == 128 && chosen.tiling.backwardKeys == nil)
    #expect(chosen.tiling.keyColumns == Tiling.fitted(to: zen3.caches).keyColumns, "the bit-changing key block is never tuned")

    for (environment, ignore) in [(["FLASHDIST_TUNING": path], true), (["FLASHDIST_TUNING": "off"], false)] {
        let ignored = TuningFile.tiling(for: .avx2, on: zen3, environment: environment, ignore: ignore)
        #expect(ignored.source == .fitted && ignored.tiling == .fitted(to: zen3.caches) && ignored.warning == nil)
    }
}

@Test func anotherMachineKeepsTheFittedTiles() throws {
    let path = scratchPath()
    defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
    try TuningFile(entries: [entry(zen3, .avx2, zen3Tiles)]).write(to: path)
    let biggerL2 = CPUInfo(cpuinfo: "model name\t: AMD EPYC 7543 32-Core Processor\ncpu family\t: 25\nmodel\t\t: 1\n",
                           caches: CacheSizes(l1: 32 << 10, l2: 1 << 20, l3: 32 << 20))
    let zen4 = CPUInfo(cpuinfo: "model name\t: AMD EPYC 9654\ncpu family\t: 25\nmodel\t\t: 17\n", caches: zen3.caches)
    for (cpu, isa) in [(zen3, InstructionSet.avx512), (biggerL2, .avx2), (zen4, .avx2)] {
        let chosen = TuningFile.tiling(for: isa, on: cpu, environment: ["FLASHDIST_TUNING": path], ignore: false)
        #expect(chosen.source == .fitted && chosen.tiling == .fitted(to: cpu.caches) && chosen.warning == nil, "\(cpu.model), \(isa)")
    }
    let missing = TuningFile.tiling(for: .avx2, on: zen3, environment: ["FLASHDIST_TUNING": path + ".none"], ignore: false)
    #expect(missing.source == .fitted && missing.warning == nil)
}

@Test("a file that cannot be used: the fitted tiles and one warning naming it",
      arguments: ["{\"version\": 1, \"entries\": [", "[1, 2]", "{\"version\": 1, \"entries\": [{\"tiles\": {}}]}", "\u{FF}\u{FE}",
                  "{\"version\": 2, \"entries\": []}"])
func malformedTuningFileWarns(_ text: String) throws {
    let path = scratchPath()
    defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
    try TuningFile().write(to: path)
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    let chosen = TuningFile.tiling(for: .avx2, on: zen3, environment: ["FLASHDIST_TUNING": path], ignore: false)
    #expect(chosen.source == .fitted && chosen.tiling == .fitted(to: zen3.caches))
    let warning = try #require(chosen.warning)
    #expect(warning.hasPrefix("\(path): ") && !warning.contains("\n"))
}

@Test func tilesThatCannotRunAreRejected() throws {
    let path = scratchPath()
    defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
    try TuningFile(entries: [entry(zen3, .avx2, TuningFile.Tiles(forwardRows: 40, backwardRows: 64, backwardKeys: nil))]).write(to: path)
    #expect(throws: TuningFileError.self) { try TuningFile.read(from: path) }
    #expect(TuningFile.tiling(for: .avx2, on: zen3, environment: ["FLASHDIST_TUNING": path], ignore: false).warning?
        .contains("forward row block must be a multiple of 16") == true)
}

@Test func tuningFileLocation() {
    #expect(TuningFile.location(environment: ["FLASHDIST_TUNING": "/x/t.json", "HOME": "/home/a"]) == "/x/t.json")
    #expect(TuningFile.location(environment: ["FLASHDIST_TUNING": "off", "HOME": "/home/a"]) == nil)
    #expect(TuningFile.location(environment: ["XDG_CACHE_HOME": "/c", "HOME": "/home/a"]) == "/c/flashdist/tuning.json")
    #expect(TuningFile.location(environment: ["XDG_CACHE_HOME": "relative", "HOME": "/home/a"]) == "/home/a/.cache/flashdist/tuning.json")
    #expect(TuningFile.location(environment: [:]) == nil)
}

@Test("tuned tiles give the bits of the fitted ones")
func tunedTilesKeepTheBits() throws {
    let c = Case(batch: 2, seqlenQ: 300, seqlenK: 260, heads: 4, kvHeads: 2, headDim: 64, causal: true)
    let isa = InstructionSet.supported.last!, caches = CPUInfo.host.caches
    let fitted = try runKernels(c, c.inputs(), configuration: KernelConfiguration(instructionSet: isa, tiling: .fitted(to: caches)))
    for tiles in [zen3Tiles, TuningFile.Tiles(forwardRows: 256, backwardRows: 64, backwardKeys: 64)] {
        let tuned = try runKernels(c, c.inputs(), configuration: KernelConfiguration(instructionSet: isa, tiling: tiles.tiling(caches: caches)))
        for (name, a, b) in [("o", fitted.o, tuned.o), ("lse", fitted.lse, tuned.lse), ("dq", fitted.dQ, tuned.dQ),
                             ("dk", fitted.dK, tuned.dK), ("dv", fitted.dV, tuned.dV)] {
            #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "\(name) with \(tiles)")
        }
    }
}
