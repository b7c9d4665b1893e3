import Foundation

/// The data caches one core sees, in bytes: L1d and L2 its own (on every x86 CPU of the last
/// decade), L3 shared. Read from sysfs; a level sysfs does not list gets a small, common size.
public struct CacheSizes: Sendable, Equatable, Codable, CustomStringConvertible {
    public var l1: Int
    public var l2: Int
    public var l3: Int

    public init(l1: Int, l2: Int, l3: Int) {
        (self.l1, self.l2, self.l3) = (l1, l2, l3)
    }

    /// Sizes from `directory`/index*/{level,type,size}, as Linux lays out /sys/devices/system/cpu/cpu0/cache.
    package static func read(from directory: String) -> CacheSizes {
        var sizes = CacheSizes(l1: 32 << 10, l2: 512 << 10, l3: 8 << 20)
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for entry in entries where entry.hasPrefix("index") {
            func field(_ name: String) -> String? {
                (try? String(contentsOfFile: "\(directory)/\(entry)/\(name)", encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            }
            guard let level = field("level").flatMap(Int.init), let type = field("type"), type != "Instruction",
                  let bytes = field("size").flatMap(parseSize) else { continue }
            switch level {
            case 1: sizes.l1 = bytes
            case 2: sizes.l2 = bytes
            case 3: sizes.l3 = bytes
            default: break
            }
        }
        return sizes
    }

    /// "32K", "1024K", "32M" or a plain byte count.
    static func parseSize(_ text: String) -> Int? {
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        if let last = text.last, let unit = units[Character(last.uppercased())] {
            return Int(text.dropLast()).map { $0 * unit }
        }
        return Int(text)
    }

    public var description: String { "L1d \(Self.format(l1)), L2 \(Self.format(l2)), L3 \(Self.format(l3))" }

    static func format(_ bytes: Int) -> String {
        bytes >= 1 << 20 && bytes % (1 << 20) == 0 ? "\(bytes >> 20) MiB" : "\(bytes >> 10) KiB"
    }
}
