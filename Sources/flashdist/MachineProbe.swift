import FlashAttention
import Foundation

/// Facts about this machine and process that benchmarks report.
enum MachineProbe {
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

    /// The processor's name as /proc/cpuinfo gives it, with its family and model numbers.
    static func cpuModel() -> String { CPUInfo.host.model }

    static func hostName() -> String {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count - 1)
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The target CPU the running kernels were compiled for: haswell (the AVX2 path) or
    /// skylake-avx512 (the AVX-512 path).
    static func targetCPU() -> String { KernelConfiguration.current.instructionSet.targetCPU }

    /// The kernels' path and the caches the tiles were fitted to, for reports.
    static func kernelPath() -> String {
        let configuration = KernelConfiguration.current
        return "\(configuration.instructionSet.rawValue) kernels (\(configuration.instructionSet.targetCPU)) on \(cpuModel()), "
            + "\(configuration.tiling.caches)"
    }

    /// The block sizes `problem` runs with, and where they came from (tuned, fitted, options).
    static func tiles(for problem: AttentionProblem) -> String {
        let configuration = KernelConfiguration.current, tiling = configuration.tiling
        return "tiles (\(configuration.tileSource.rawValue)): forward \(tiling.forwardRows(for: problem)) rows × \(tiling.keyColumns) keys, "
            + "backward \(tiling.backwardRows) rows × \(tiling.backwardKeys(for: problem)) keys"
    }

    /// The middle value, or the mean of the two middle ones.
    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}
