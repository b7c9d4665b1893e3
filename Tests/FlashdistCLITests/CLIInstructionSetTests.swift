import Foundation
import Testing

// FLASHDIST_ISA picks the kernels' instruction set; bench names the one that ran. A name the
// program does not know, or a set this CPU lacks, is one error line before anything runs.

private let tinyBench = ["bench", "--seqlen-q", "32", "--heads", "1", "--warmup", "0", "--repeats", "1"]

private let hasAVX512: Bool = {
    let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    let flags = info.split(separator: "\n").first { $0.hasPrefix("flags") }.map { Set($0.split(separator: " ")) } ?? []
    return ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"].allSatisfy { flags.contains(Substring($0)) }
}()

@Test func benchNamesTheForcedInstructionSet() throws {
    let scratch = try ScratchDirectory()
    let avx2 = try runFlashdist(tinyBench, in: scratch, environment: ["FLASHDIST_ISA": "avx2"])
    #expect(avx2.status == 0)
    #expect(avx2.stdout.contains("avx2 kernels (haswell)"))
    #expect(avx2.stdout.contains("L2 "))
    let avx512 = try runFlashdist(tinyBench, in: scratch, environment: ["FLASHDIST_ISA": "avx512"])
    if hasAVX512 {
        #expect(avx512.status == 0)
        #expect(avx512.stdout.contains("avx512 kernels (skylake-avx512)"))
    } else {
        #expect(avx512.status != 0)
        #expect(avx512.stderrLines.count == 1 && avx512.stderr.hasPrefix("flashdist: error: FLASHDIST_ISA: avx512 is not supported"))
    }
    let unset = try runFlashdist(tinyBench, in: scratch, environment: ["FLASHDIST_ISA": ""])
    #expect(unset.stdout.contains(hasAVX512 ? "avx512 kernels" : "avx2 kernels"))
}

@Test func unknownInstructionSetIsOneErrorLine() throws {
    let scratch = try ScratchDirectory()
    let result = try runFlashdist(tinyBench, in: scratch, environment: ["FLASHDIST_ISA": "avx1024"])
    #expect(result.status != 0)
    #expect(result.stdout.isEmpty)
    #expect(result.stderrLines == ["flashdist: error: FLASHDIST_ISA: 'avx1024' is not one of avx2, avx512"])
}
