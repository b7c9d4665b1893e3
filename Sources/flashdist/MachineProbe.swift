import Dispatch
import Foundation
import Synchronization

/// Facts about this machine and process that benchmarks report.
enum MachineProbe {
    /// The fp32 FMA throughput of `threads` threads, in GFLOP/s: each runs twelve independent
    /// 8-lane FMA chains held in registers (enough to cover FMA latency on two pipes), so the loop
    /// measures the arithmetic units and nothing else.
    static func fmaPeakGFLOPS(threads: Int) -> Double {
        let iterations = 40_000_000
        let start = DispatchTime.now().uptimeNanoseconds
        let sink = Mutex<Float>(0)
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            let x = SIMD8<Float>(repeating: 0.999_999), y = SIMD8<Float>(repeating: 1e-7)
            var a0 = SIMD8<Float>(repeating: 1), a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3, a4 = a0 + 4, a5 = a0 + 5
            var a6 = a0 + 6, a7 = a0 + 7, a8 = a0 + 8, a9 = a0 + 9, a10 = a0 + 10, a11 = a0 + 11
            for _ in 0..<iterations {
                a0 = a0.addingProduct(a0, x) ; a1 = a1.addingProduct(a1, x); a2 = a2.addingProduct(a2, x)
                a3 = a3.addingProduct(a3, x); a4 = a4.addingProduct(a4, x); a5 = a5.addingProduct(a5, x)
                a6 = a6.addingProduct(a6, y); a7 = a7.addingProduct(a7, y); a8 = a8.addingProduct(a8, y)
                a9 = a9.addingProduct(a9, y); a10 = a10.addingProduct(a10, y); a11 = a11.addingProduct(a11, y)
            }
            let total = (a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11).sum()
            sink.withLock { $0 += total }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Double(threads * iterations * 12 * 8 * 2) / seconds / 1e9
    }

    /// The most memory this process has held resident, in bytes.
    static func peakResidentBytes() -> Int {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return usage.ru_maxrss * 1024
    }

    /// MemAvailable of /proc/meminfo in bytes (infinite where there is none).
    static func availableMemoryBytes() -> Double {
        let info = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
        let line = info.split(separator: "\n").first { $0.hasPrefix("MemAvailable:") }
        return line.flatMap { Double($0.split(separator: " ")[1]) }.map { $0 * 1024 } ?? .infinity
    }

    /// The processor's name as /proc/cpuinfo gives it ("unknown" where there is none).
    static func cpuModel() -> String {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let line = info.split(separator: "\n").first { $0.hasPrefix("model name") }
        return line.flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
    }

    static func hostName() -> String {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count - 1)
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The compiler's target CPU as far as a running binary can tell: `Package.swift` reads
    /// FLASHDIST_TARGET_CPU at build time and cannot hand it to the code, so this is the variable
    /// at run time (set it alike for both), or the build's default.
    static func targetCPU() -> String {
        #if DEBUG
        return "debug build"
        #else
        return ProcessInfo.processInfo.environment["FLASHDIST_TARGET_CPU"] ?? "haswell"
        #endif
    }

    /// The middle value, or the mean of the two middle ones.
    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}
