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

    /// Median wall time of `body` over `repeats` runs after `warmup` untimed ones.
    static func medianSeconds(warmup: Int, repeats: Int, _ body: () -> Void) -> Double {
        for _ in 0..<warmup { body() }
        let times = (0..<max(1, repeats)).map { _ -> Double in
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }.sorted()
        return times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
    }
}
