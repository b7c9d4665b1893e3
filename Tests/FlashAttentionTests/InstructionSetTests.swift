import FlashAttention
import Foundation
import Testing

// The kernels are compiled once per instruction set and picked at run time; the tiles come from
// the caches. Every path this CPU runs must match the float64 reference, and the paths must agree
// bit for bit with each other (same code, same order of every sum) for the same key block, as
// must any choice of row blocks.

private let featureCases: [Case] = [
    Case(batch: 2, seqlenQ: 150, seqlenK: 150, heads: 4, kvHeads: 2, headDim: 64, causal: true),
    Case(seqlenQ: 97, seqlenK: 211, heads: 3, kvHeads: 1, headDim: 33, windowLeft: 40, windowRight: 7),
    Case(seqlenQ: 130, seqlenK: 130, heads: 2, kvHeads: 2, headDim: 128, causal: true, softcap: 20,
         alibiSlopes: AlibiSlopes(values: [0.25, 0.0625], heads: 2), dropout: Dropout(probability: 0.2, seed: 9)),
    // v of its own head dim, wider than q's and k's.
    Case(seqlenQ: 100, seqlenK: 120, heads: 4, kvHeads: 2, headDim: 48, valueHeadDim: 80, causal: true),
]

private func bits(_ c: Case, _ configuration: KernelConfiguration, threads: Int = 2) throws -> [[UInt32]] {
    let problem = try c.problem(), x = c.inputs()
    let (o, lse) = FlashAttention.forward(problem, q: x.q, k: x.k, v: x.v, threads: threads, configuration: configuration)
    let g = FlashAttention.backward(problem, q: x.q, k: x.k, v: x.v, o: o, lse: lse, dO: x.dO, threads: threads,
                                    configuration: configuration)
    return [o, lse, g.dQ, g.dK, g.dV].map { $0.map(\.bitPattern) }
}

private func configuration(_ isa: InstructionSet, _ tiling: Tiling = .fitted(to: CPUInfo.host.caches)) -> KernelConfiguration {
    KernelConfiguration(instructionSet: isa, tiling: tiling)
}

@Test("every instruction set this CPU has matches the reference", arguments: featureCases)
func everyInstructionSetMatchesTheReference(_ c: Case) throws {
    #expect(InstructionSet.supported.contains(.avx2))
    let x = c.inputs(), expected = runReference(c, x)
    for isa in InstructionSet.supported {
        let actual = try runKernels(c, x, configuration: configuration(isa))
        expectMatches(actual, expected, forward: forwardTolerance, backward: backwardTolerance)
    }
}

@Test("the instruction sets give bitwise identical results", arguments: featureCases)
func instructionSetsAgreeBitwise(_ c: Case) throws {
    let narrowest = try bits(c, configuration(.avx2))
    for isa in InstructionSet.supported.dropFirst() {
        #expect(try bits(c, configuration(isa)) == narrowest, "\(isa) differs from avx2")
    }
}

@Test("only the forward's key block changes bits, no other block size", arguments: featureCases)
func onlyTheForwardKeyBlockChangesBits(_ c: Case) throws {
    let caches = CPUInfo.host.caches, isa = InstructionSet.supported.last!
    let reference = try bits(c, configuration(isa, Tiling(keyColumns: 64, backwardRows: 64, backwardKeys: 64, forwardRows: 64,
                                                          caches: caches)))
    for (forward, backward, backwardKeys) in [(16, 16, 16), (48, 128, 128), (256, 32, 256)] {
        let tiling = Tiling(keyColumns: 64, backwardRows: backward, backwardKeys: backwardKeys, forwardRows: forward, caches: caches)
        #expect(try bits(c, configuration(isa, tiling)) == reference, "rows \(forward)/\(backward), backward keys \(backwardKeys)")
    }
    for keys in [16, 32, 128] {
        let tiling = Tiling(keyColumns: keys, caches: caches)
        expectMatches(try runKernels(c, c.inputs(), configuration: configuration(isa, tiling)), runReference(c, c.inputs()),
                      forward: forwardTolerance, backward: backwardTolerance)
    }
}

@Test func isaFromTheEnvironment() throws {
    #expect(try InstructionSet.chosen(environment: [:]) == InstructionSet.supported.last)
    for isa in InstructionSet.supported {
        #expect(try InstructionSet.chosen(environment: ["FLASHDIST_ISA": isa.rawValue]) == isa)
    }
    #expect(throws: AttentionError.self) { try InstructionSet.chosen(environment: ["FLASHDIST_ISA": "sse4"]) }
    let missing = InstructionSet.allCases.filter { !InstructionSet.supported.contains($0) }
    for isa in missing {
        #expect(throws: AttentionError.self) { try InstructionSet.chosen(environment: ["FLASHDIST_ISA": isa.rawValue]) }
    }
}

@Test func cpuAndCachesFromProcAndSysfs() throws {
    let zen3 = CPUInfo(cpuinfo: """
        processor\t: 0
        cpu family\t: 25
        model\t\t: 1
        model name\t: AMD EPYC 7543 32-Core Processor
        flags\t\t: fpu sse2 avx fma avx2 bmi2

        processor\t: 1
        flags\t\t: avx512f
        """, caches: CacheSizes(l1: 32 << 10, l2: 512 << 10, l3: 32 << 20))
    #expect(zen3.model == "AMD EPYC 7543 32-Core Processor (family 25 model 1)")
    #expect(zen3.flags.contains("avx2") && zen3.flags.contains("fma") && !zen3.flags.contains("avx512f"))

    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("caches-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: directory) }
    for (index, level, type, size) in [(0, 1, "Data", "48K"), (1, 1, "Instruction", "32K"), (2, 2, "Unified", "2048K"),
                                       (3, 3, "Unified", "96M")] {
        let entry = "\(directory)/index\(index)"
        try FileManager.default.createDirectory(atPath: entry, withIntermediateDirectories: true)
        for (name, value) in [("level", "\(level)"), ("type", type), ("size", size)] {
            try "\(value)\n".write(toFile: "\(entry)/\(name)", atomically: true, encoding: .utf8)
        }
    }
    #expect(CacheSizes.read(from: directory) == CacheSizes(l1: 48 << 10, l2: 2 << 20, l3: 96 << 20))
    #expect(CacheSizes.read(from: directory + "/none") == CacheSizes(l1: 32 << 10, l2: 512 << 10, l3: 8 << 20))
}

private func problem(_ seqlen: Int, _ headDim: Int, causal: Bool = false) throws -> AttentionProblem {
    try AttentionProblem(batch: 1, seqlenQ: seqlen, seqlenK: seqlen, heads: 8, kvHeads: 8, headDim: headDim,
                         options: AttentionOptions(softmaxScale: 1, causal: causal))
}

@Test("the backward's key blocks are the widest, up to 256, whose blocks fit L2, and under a causal mask an eighth of the keys at most")
func backwardKeysFollowL2() throws {
    func keys(_ headDim: Int, l2: Int, seqlen: Int = 4096, causal: Bool = false) throws -> Int {
        Tiling.fitted(to: CacheSizes(l1: 32 << 10, l2: l2, l3: 32 << 20))
            .backwardKeys(for: try problem(seqlen, headDim, causal: causal))
    }
    #expect(try keys(64, l2: 1 << 20, seqlen: 2048, causal: true) == 256)
    #expect(try keys(64, l2: 1 << 20, seqlen: 1024, causal: true) == 128)
    #expect(try keys(64, l2: 1 << 20, seqlen: 1024) == 256)
    #expect(try keys(64, l2: 1 << 20, seqlen: 256, causal: true) == 64)
    // D = 64 at 256 keys: 480 KiB; D = 128: 832 KiB at 256 keys, 448 KiB at 128, 256 KiB at 64.
    #expect(try keys(64, l2: 1 << 20) == 256)
    #expect(try keys(64, l2: 512 << 10) == 256)
    #expect(try keys(64, l2: 256 << 10) == 128)
    #expect(try keys(128, l2: 1 << 20) == 256)
    #expect(try keys(128, l2: 512 << 10) == 128)
    #expect(try keys(128, l2: 384 << 10) == 64)
}

@Test("the forward's row blocks fit half of L2, grow once a head's K and V leave L2, and leave four tiles per core")
func forwardRowsFollowTheCaches() throws {
    func rows(_ seqlen: Int, _ headDim: Int, l2: Int, cores: Int = 2) throws -> Int {
        let problem = try problem(seqlen, headDim)
        let tiling = Tiling(caches: CacheSizes(l1: 32 << 10, l2: l2, l3: 32 << 20), cores: cores)
        let chosen = tiling.forwardRows(for: problem)
        #expect(chosen == 64 || 4 * chosen * 2 * headDim <= l2 / 2)
        return chosen
    }
    // One head's K and V: 512 KiB at N = 1024, 1 MiB at 2048, 2 MiB at 4096.
    #expect(try rows(1024, 64, l2: 1 << 20) == 256)
    #expect(try rows(2048, 64, l2: 1 << 20) == 256)
    #expect(try rows(4096, 64, l2: 1 << 20) == 1024)
    // Eight heads of 1024 rows: 32 tiles of 256 rows, fewer than four per core of 64 cores.
    #expect(try rows(1024, 64, l2: 1 << 20, cores: 64) == 64)
    #expect(try rows(4096, 64, l2: 512 << 10) == 512)
    #expect(try rows(32768, 64, l2: 1 << 20) == 1024)
    #expect(try rows(32768, 128, l2: 512 << 10) == 256)
    #expect(Tiling(keyColumns: 40, caches: CPUInfo.host.caches).problem != nil)
    #expect(Tiling.fitted(to: CPUInfo.host.caches).problem == nil)
}
