import Foundation

/// Where the tiles a run uses came from.
public enum TileSource: String, Sendable, CaseIterable {
    /// Fitted to the caches (`Tiling.fitted`).
    case fitted
    /// The entry of the tuning file that `flashdist tune` wrote for this machine.
    case tuned
    /// Given on the command line (`bench --block-q/--block-k`).
    case options
}

/// The tiles `flashdist tune` measured fastest, kept per machine like FFTW's wisdom: one entry per
/// CPU model, instruction set and cache sizes, so a file shared between machines (a home directory
/// on a cluster) serves each its own, and a machine with no entry keeps the fitted tiles.
///
/// Only sizes that never change a bit are tuned (the forward's row block, the backward's row and
/// key blocks; see `Tiling`): a tuned run gives exactly the bytes of a fitted one. The forward's
/// key block, which sets where the running max is rescaled, stays the fitted one.
public struct TuningFile: Codable, Equatable, Sendable {
    public static let version = 1

    /// What an entry is valid for.
    public struct Key: Codable, Equatable, Sendable {
        public var cpu: String
        public var isa: String
        public var caches: CacheSizes

        public init(cpu: String, isa: InstructionSet, caches: CacheSizes) {
            (self.cpu, self.isa, self.caches) = (cpu, isa.rawValue, caches)
        }
    }

    /// The tuned sizes; nil keeps the size the caches give per problem.
    public struct Tiles: Codable, Equatable, Sendable {
        public var forwardRows: Int?
        public var backwardRows: Int
        public var backwardKeys: Int?

        public init(forwardRows: Int?, backwardRows: Int, backwardKeys: Int?) {
            (self.forwardRows, self.backwardRows, self.backwardKeys) = (forwardRows, backwardRows, backwardKeys)
        }

        enum CodingKeys: String, CodingKey {
            case forwardRows = "forward_rows", backwardRows = "backward_rows", backwardKeys = "backward_keys"
        }

        /// Encodes nil as null, so the file says which sizes were left to the caches.
        public func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(forwardRows, forKey: .forwardRows)
            try container.encode(backwardRows, forKey: .backwardRows)
            try container.encode(backwardKeys, forKey: .backwardKeys)
        }

        /// These sizes on top of the fitted tiling for `caches`.
        public func tiling(caches: CacheSizes) -> Tiling {
            var tiling = Tiling.fitted(to: caches)
            (tiling.forwardRows, tiling.backwardRows, tiling.backwardKeys) = (forwardRows, backwardRows, backwardKeys)
            return tiling
        }
    }

    /// How the tiles were chosen, for whoever reads the file.
    public struct Measurement: Codable, Equatable, Sendable {
        public var date: String
        /// The shapes timed, as `tune --shape` takes them.
        public var shapes: [String]
        public var threads: Int
        /// Fitted time over tuned time, forward and backward (geometric mean over the shapes).
        public var forwardGain: Double
        public var backwardGain: Double

        public init(date: String, shapes: [String], threads: Int, forwardGain: Double, backwardGain: Double) {
            (self.date, self.shapes, self.threads, self.forwardGain, self.backwardGain) = (date, shapes, threads, forwardGain, backwardGain)
        }

        enum CodingKeys: String, CodingKey {
            case date, shapes, threads, forwardGain = "forward_gain", backwardGain = "backward_gain"
        }
    }

    public struct Entry: Codable, Equatable, Sendable {
        public var host: Key
        public var tiles: Tiles
        public var measured: Measurement?

        public init(host: Key, tiles: Tiles, measured: Measurement?) {
            (self.host, self.tiles, self.measured) = (host, tiles, measured)
        }
    }

    public var version = TuningFile.version
    public var entries: [Entry] = []

    public init(entries: [Entry] = []) { self.entries = entries }

    public func tiles(for key: Key) -> Tiles? { entries.first { $0.host == key }?.tiles }

    /// Adds `entry`, replacing the one for its host.
    public mutating func record(_ entry: Entry) {
        entries.removeAll { $0.host == entry.host }
        entries.append(entry)
    }

    /// The file `FLASHDIST_TUNING` names, or tuning.json in the XDG cache directory
    /// ($XDG_CACHE_HOME/flashdist, else ~/.cache/flashdist); nil for `FLASHDIST_TUNING=off` or
    /// without a home directory.
    public static func location(environment: [String: String]) -> String? {
        if let named = environment["FLASHDIST_TUNING"], !named.isEmpty { return named == "off" ? nil : named }
        if let cache = environment["XDG_CACHE_HOME"], cache.hasPrefix("/") { return "\(cache)/flashdist/tuning.json" }
        if let home = environment["HOME"], !home.isEmpty { return "\(home)/.cache/flashdist/tuning.json" }
        return nil
    }

    /// The file at `path`; nil where there is none.
    public static func read(from path: String) throws(TuningFileError) -> TuningFile? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return nil }
        guard !isDirectory.boolValue else { throw TuningFileError(path: path, reason: "is a directory, not a tuning file") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TuningFileError(path: path, reason: "cannot be read")
        }
        let file: TuningFile
        do {
            file = try JSONDecoder().decode(TuningFile.self, from: data)
        } catch let error as DecodingError {
            throw TuningFileError(path: path, reason: "not a tuning file (\(Self.describe(error)))")
        } catch {
            throw TuningFileError(path: path, reason: "not a tuning file (\(error))")
        }
        guard file.version == version else {
            throw TuningFileError(path: path, reason: "version \(file.version), this flashdist reads version \(version)")
        }
        for entry in file.entries {
            if let problem = entry.tiles.tiling(caches: entry.host.caches).problem {
                throw TuningFileError(path: path, reason: "the entry for \(entry.host.cpu), \(entry.host.isa): \(problem)")
            }
        }
        return file
    }

    /// Writes the file whole under a temporary name and renames it, so a reader never sees half of
    /// it; makes the directory if it is missing.
    public func write(to path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: url, options: .atomic)
    }

    /// The tiles a run on `cpu` with `isa` uses: the tuning file's entry for it unless `ignore` or
    /// `FLASHDIST_TUNING=off`, else the fitted ones. A file that cannot be used gives the fitted
    /// tiles and a warning to print, never an error: the tiles are a matter of speed only.
    public static func tiling(for isa: InstructionSet, on cpu: CPUInfo = .host, environment: [String: String],
                              ignore: Bool) -> (tiling: Tiling, source: TileSource, warning: String?) {
        let fitted = Tiling.fitted(to: cpu.caches)
        guard !ignore, let path = location(environment: environment) else { return (fitted, .fitted, nil) }
        do {
            guard let tiles = try read(from: path)?.tiles(for: Key(cpu: cpu.model, isa: isa, caches: cpu.caches)) else {
                return (fitted, .fitted, nil)
            }
            return (tiles.tiling(caches: cpu.caches), .tuned, nil)
        } catch {
            return (fitted, .fitted, "\(error); using tiles fitted to the caches")
        }
    }

    /// The decoder's complaint in a few words: what was wrong, and where.
    private static func describe(_ error: DecodingError) -> String {
        func at(_ path: [CodingKey]) -> String {
            path.isEmpty ? "" : " at " + path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .dataCorrupted(let context): return "invalid JSON\(at(context.codingPath))"
        case .keyNotFound(let key, let context): return "'\(key.stringValue)' missing\(at(context.codingPath))"
        case .typeMismatch(_, let context), .valueNotFound(_, let context): return "wrong type\(at(context.codingPath))"
        @unknown default: return "\(error)"
        }
    }
}

/// A tuning file that cannot be used: its path and why.
public struct TuningFileError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let reason: String

    public var description: String { "\(path): \(reason)" }
}
