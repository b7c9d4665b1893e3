import Foundation

/// The vector instruction sets the kernels are compiled for, narrowest first. The binary needs
/// AVX2 + FMA everywhere; AVX-512 kernels run where the CPU (and the kernel, which saves the
/// wider registers) offers AVX-512 F, BW, CD, DQ and VL (the x86-64-v4 level), which the skylake-avx512
/// target they are built for assumes.
public enum InstructionSet: String, Sendable, CaseIterable, Comparable {
    case avx2, avx512

    /// The flags of /proc/cpuinfo each one needs.
    var cpuFlags: [String] {
        switch self {
        case .avx2: ["avx2", "fma"]
        case .avx512: ["avx2", "fma", "avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"]
        }
    }

    /// What the kernels of this set are compiled for (`-target-cpu`).
    public var targetCPU: String { self == .avx2 ? "haswell" : "skylake-avx512" }

    /// The sets this machine runs, narrowest first.
    public static let supported: [InstructionSet] = {
        let flags = CPUInfo.host.flags
        return allCases.filter { $0.cpuFlags.allSatisfy(flags.contains) }
    }()

    /// `FLASHDIST_ISA` when set (an error if this CPU lacks it or the name is unknown), else the
    /// widest supported set.
    public static func chosen(environment: [String: String]) throws(AttentionError) -> InstructionSet {
        guard let name = environment["FLASHDIST_ISA"], !name.isEmpty else { return supported.last ?? .avx2 }
        guard let forced = InstructionSet(rawValue: name.lowercased()) else { throw .unknownInstructionSet(name) }
        guard supported.contains(forced) else { throw .unsupportedInstructionSet(forced) }
        return forced
    }

    public static func < (a: InstructionSet, b: InstructionSet) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// What /proc/cpuinfo says of the first processor, and its caches from sysfs.
public struct CPUInfo: Sendable {
    /// "model name", with family and model numbers when the name alone does not tell the
    /// generation (a virtual machine often reports just "AMD EPYC").
    public let model: String
    public let flags: Set<String>
    public let caches: CacheSizes

    public static let host = CPUInfo(cpuinfo: (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "",
                                     caches: CacheSizes.read(from: "/sys/devices/system/cpu/cpu0/cache"))

    package init(cpuinfo: String, caches: CacheSizes) {
        var fields: [String: String] = [:]
        for line in cpuinfo.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty { break }
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            fields[parts[0].trimmingCharacters(in: .whitespaces)] = parts[1].trimmingCharacters(in: .whitespaces)
        }
        let name = fields["model name"] ?? "unknown"
        if let family = fields["cpu family"], let model = fields["model"] {
            self.model = "\(name) (family \(family) model \(model))"
        } else {
            self.model = name
        }
        flags = Set((fields["flags"] ?? "").split(separator: " ").map(String.init))
        self.caches = caches
    }
}
