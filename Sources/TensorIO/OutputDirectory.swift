import Foundation

/// A directory whose outputs change from one complete set to the next in one atomic rename.
///
/// A run writes every output into a new set directory, `DIR/.flashdist-set-TAG/`, with a
/// manifest (`flashdist-manifest.json`: each file's name, size and CRC-32) written last. The
/// names a reader opens, `DIR/o.npy` and so on, are symbolic links through `DIR/.flashdist-current`,
/// itself a link to the current set. Making the new set current is one `rename` of that link,
/// so a reader, or the directory after a crash, a kill or a full disk, sees the earlier set or
/// the new one, never a mix. The switch, step by step (each step a `FaultPoint`):
///
/// 1. `synced`: every file has its full size and is fsynced; each one's CRC-32 is taken.
/// 2. `manifest`: the manifest is written and fsynced, then the set directory.
/// 3. `linked`: each name of the new set has its link (a name new to DIR dangles until the
///    switch, as a name that set never had); DIR is fsynced.
/// 4. `switched`: `.flashdist-current` is renamed to point at the new set; DIR is fsynced.
/// 5. `cleaned`: links of names the new set does not have, and the earlier set, are removed.
///
/// A set directory whose run is no longer alive and that is not current is removed by the next
/// run in DIR, as are leftovers of steps 3 and 5.
public final class OutputDirectory {
    public let path: String
    /// The new set's directory, `DIR/.flashdist-set-TAG`, where every output of this run is written.
    public let setPath: String
    private let tag: String
    /// Each file of the new set with the size it must have.
    private var files: [(name: String, size: Int)] = []
    private var finished = false

    public static let manifestName = "flashdist-manifest.json"
    public static let currentLink = ".flashdist-current"
    static let setPrefix = ".flashdist-set-"
    /// Temporary links of steps 3 and 4, before their rename; and the temporaries of earlier versions.
    static let temporaryPrefixes = [".flashdist-link-", ".flashdist-tmp-"]

    /// Creates DIR if needed, checks that every name in `names` can become a link, removes what
    /// dead runs left, and creates this run's (empty) set directory.
    public init(_ path: String, names: [String], tag: String = OutputDirectory.newTag()) throws(TensorIOError) {
        self.path = path
        self.tag = tag
        setPath = OutputDirectory.setPath(in: path, tag: tag)
        try Self.createDirectory(path)
        for name in names + [Self.manifestName] {
            var info = stat()
            if FilePath.withSystemPath(finalPath(for: name), { lstat($0, &info) }) == 0, info.st_mode & S_IFMT == S_IFDIR {
                throw TensorIOError(finalPath(for: name), "is a directory, where an output file goes")
            }
        }
        removeAbandoned()
        guard FilePath.withSystemPath(setPath, { mkdir($0, 0o755) }) == 0 else {
            throw TensorIOError(path, "output directory is not writable (\(systemError()))")
        }
        InterruptCleanup.shared.register(setPath)
    }

    /// A tag no earlier run in DIR can have had: this process's id (which the sweep checks for
    /// life) and the time in nanoseconds (so a reused id never collides with a current set).
    public static func newTag() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return "\(getpid())-\(String(UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec), radix: 16))"
    }

    /// Where file `name` of the set tagged `tag` is written: what writers other than the one
    /// that prepared the directory (other ranks) open.
    public static func setPath(in path: String, tag: String) -> String { "\(path)/\(setPrefix)\(tag)" }
    public func stagedPath(for name: String) -> String { "\(setPath)/\(name)" }
    public func finalPath(for name: String) -> String { "\(path)/\(name)" }

    /// Creates file `name` of the set: `header` at its start and its whole `size` reserved on the
    /// device, so a full disk fails here, before any compute, and not halfway through the data.
    public func create(_ name: String, header: Data, size: Int) throws(TensorIOError) {
        let label = finalPath(for: name)
        let descriptor = FilePath.withSystemPath(stagedPath(for: name)) { open($0, O_WRONLY | O_CREAT | O_EXCL, 0o644) }
        guard descriptor >= 0 else { throw TensorIOError(label, "cannot be created (\(systemError()))") }
        defer { close(descriptor) }
        files.append((name, size))
        let code = posix_fallocate(descriptor, 0, off_t(size))
        guard code == 0 else {
            throw TensorIOError(label, "cannot reserve its \(size) bytes (\(systemError(code)))")
        }
        try writeFully(descriptor, header, at: 0, label: label)
    }

    /// Writes `data` at byte `offset` of file `name` of the set.
    public func write(_ name: String, _ data: Data, at offset: Int) throws(TensorIOError) {
        let label = finalPath(for: name)
        let descriptor = FilePath.withSystemPath(stagedPath(for: name)) { open($0, O_WRONLY) }
        guard descriptor >= 0 else { throw TensorIOError(label, "cannot be written (\(systemError()))") }
        defer { close(descriptor) }
        try writeFully(descriptor, data, at: offset, label: label)
    }

    /// Makes the new set DIR's current one (the steps above); every other writer must be done.
    public func commit() throws(TensorIOError) {
        let manifest = try syncedManifest()
        FaultPoint.reached("synced")
        try writeManifest(manifest)
        try syncDirectory(setPath)
        FaultPoint.reached("manifest")
        let names = files.map(\.name) + [Self.manifestName]
        for name in names { try link(name) }
        try syncDirectory(path)
        FaultPoint.reached("linked")
        let earlier = current()
        try InterruptCleanup.shared.keep(setPath) { () throws(TensorIOError) in
            try replace(Self.currentLink, withLinkTo: "\(Self.setPrefix)\(tag)")
        }
        finished = true
        try syncDirectory(path)
        FaultPoint.reached("switched")
        removeLinks(except: Set(names))
        if let earlier, earlier != setPath { removeSet(earlier) }
        FaultPoint.reached("cleaned")
    }

    /// The files of the set `DIR/flashdist-manifest.json` describes, each checked against its
    /// size and CRC-32, with no other output (.npy or .safetensors) beside them: what a reader checks to know that DIR
    /// holds one complete set. Throws when DIR holds no set or an incomplete one.
    public static func verifiedSet(in path: String) throws(TensorIOError) -> [String] {
        let manifestPath = "\(path)/\(manifestName)"
        let size = try fileSize(manifestPath)
        guard case .object(let members)? = try? JSONValue.parse(try readBytes(manifestPath, count: size, at: 0)),
              case .array(let entries)? = members.first(where: { $0.key == "files" })?.value else {
            throw TensorIOError(manifestPath, "is not a flashdist manifest")
        }
        var names: [String] = []
        for entry in entries {
            guard case .object(let fields) = entry, case .string(let name)? = fields.first(where: { $0.key == "name" })?.value,
                  let bytes = fields.first(where: { $0.key == "bytes" })?.value.integer,
                  let crc = fields.first(where: { $0.key == "crc32" })?.value.integer else {
                throw TensorIOError(manifestPath, "is not a flashdist manifest")
            }
            let file = "\(path)/\(name)"
            let size = try fileSize(file)
            let descriptor = FilePath.withSystemPath(file) { open($0, O_RDONLY) }
            guard descriptor >= 0 else { throw TensorIOError(file, "cannot be opened (\(systemError()))") }
            defer { close(descriptor) }
            let checksum = try CRC32.of(descriptor, size: size, label: file)
            guard size == bytes, Int(checksum) == crc else {
                throw TensorIOError(file, "differs from the manifest (\(size) bytes, CRC-32 \(checksum))")
            }
            names.append(name)
        }
        let visible = (directoryEntries(path) ?? []).filter { name in
            (name.hasSuffix(".npy") || name.hasSuffix(".safetensors")) && (try? fileSize("\(path)/\(name)")) != nil
        }
        if let stray = visible.first(where: { !names.contains($0) }) {
            throw TensorIOError("\(path)/\(stray)", "is not in the manifest")
        }
        return names.sorted()
    }

    /// Removes the new set, leaving DIR as it was.
    public func discard() {
        guard !finished else { return }
        finished = true
        removeSet(setPath)
        InterruptCleanup.shared.unregister(setPath)
    }

    /// Checks each file's size, syncs its data to the device and takes its CRC-32: the manifest.
    private func syncedManifest() throws(TensorIOError) -> String {
        var entries: [String] = []
        for (name, size) in files {
            let label = finalPath(for: name)
            let descriptor = FilePath.withSystemPath(stagedPath(for: name)) { open($0, O_RDONLY) }
            guard descriptor >= 0 else { throw TensorIOError(label, "cannot be read back (\(systemError()))") }
            defer { close(descriptor) }
            var info = stat()
            guard fstat(descriptor, &info) == 0, Int(info.st_size) == size else {
                throw TensorIOError(label, "holds \(info.st_size) bytes after writing, expected \(size)")
            }
            guard fsync(descriptor) == 0 else { throw TensorIOError(label, "cannot be synced to disk (\(systemError()))") }
            let checksum = try CRC32.of(descriptor, size: size, label: label)
            entries.append("    {\"name\": \(jsonQuoted(name)), \"bytes\": \(size), \"crc32\": \(checksum)}")
        }
        return "{\"set\": \(jsonQuoted("\(Self.setPrefix)\(tag)")), \"files\": [\n"
            + entries.joined(separator: ",\n") + "\n]}\n"
    }

    private func writeManifest(_ text: String) throws(TensorIOError) {
        let label = finalPath(for: Self.manifestName)
        let descriptor = FilePath.withSystemPath(stagedPath(for: Self.manifestName)) { open($0, O_WRONLY | O_CREAT | O_EXCL, 0o644) }
        guard descriptor >= 0 else { throw TensorIOError(label, "cannot be created (\(systemError()))") }
        defer { close(descriptor) }
        try writeFully(descriptor, Array(text.utf8), at: 0, label: label)
        guard fsync(descriptor) == 0 else { throw TensorIOError(label, "cannot be synced to disk (\(systemError()))") }
    }

    /// Points `DIR/name` at `.flashdist-current/name`, unless it already does.
    private func link(_ name: String) throws(TensorIOError) {
        let target = "\(Self.currentLink)/\(name)"
        guard Self.linkTarget(finalPath(for: name)) != target else { return }
        try replace(name, withLinkTo: target)
    }

    /// Makes `DIR/name` a symbolic link to `target` in one rename (a link made aside first).
    private func replace(_ name: String, withLinkTo target: String) throws(TensorIOError) {
        let temporary = "\(path)/\(Self.temporaryPrefixes[0])\(tag)-\(name)"
        FilePath.withSystemPath(temporary) { _ = unlink($0) }
        let made = FilePath.withSystemPath(target) { target in FilePath.withSystemPath(temporary) { symlink(target, $0) } }
        guard made == 0 else { throw TensorIOError(finalPath(for: name), "cannot be linked (\(systemError()))") }
        let renamed = FilePath.withSystemPath(temporary) { from in FilePath.withSystemPath(finalPath(for: name)) { rename(from, $0) } }
        guard renamed == 0 else {
            let reason = systemError()
            FilePath.withSystemPath(temporary) { _ = unlink($0) }
            throw TensorIOError(finalPath(for: name), "cannot be replaced (\(reason))")
        }
    }

    /// The current set's directory, if DIR has one.
    private func current() -> String? {
        Self.linkTarget("\(path)/\(Self.currentLink)").map { "\(path)/\($0)" }
    }

    /// Removes the links through `.flashdist-current` of names not in `keep`.
    private func removeLinks(except keep: Set<String>) {
        for name in directoryEntries(path) ?? [] where !keep.contains(name) {
            if Self.linkTarget(finalPath(for: name)) == "\(Self.currentLink)/\(name)" {
                FilePath.withSystemPath(finalPath(for: name)) { _ = unlink($0) }
            }
        }
    }

    /// Removes what runs that are no longer alive left: sets that are not current, temporary
    /// links; and, when no other run is writing into DIR, links to names the current set lacks.
    private func removeAbandoned() {
        let current = Self.linkTarget("\(path)/\(Self.currentLink)")
        var othersAlive = false
        for entry in directoryEntries(path) ?? [] {
            guard let prefix = ([Self.setPrefix] + Self.temporaryPrefixes).first(where: entry.hasPrefix), entry != current else { continue }
            let owner = entry.dropFirst(prefix.count).prefix { $0 != "-" }
            if Int32(owner).map(Self.isRunning) ?? false {
                othersAlive = true
            } else if prefix == Self.setPrefix {
                removeSet("\(path)/\(entry)")
            } else {
                FilePath.withSystemPath("\(path)/\(entry)") { _ = unlink($0) }
            }
        }
        guard !othersAlive else { return }
        let currentNames = Set(current.flatMap { directoryEntries("\(path)/\($0)") } ?? [])
        removeLinks(except: currentNames)
    }

    /// The target of the symbolic link at `path`; nil when it is not one.
    static func linkTarget(_ path: String) -> String? {
        var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = FilePath.withSystemPath(path) { link in
            buffer.withUnsafeMutableBufferPointer { readlink(link, UnsafeMutableRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), $0.count - 1) }
        }
        return count < 0 ? nil : FilePath.string(fromSystem: Array(buffer.prefix(count)))
    }

    /// `mkdir -p`.
    private static func createDirectory(_ path: String) throws(TensorIOError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/\(component)"
            if FilePath.withSystemPath(prefix, { mkdir($0, 0o755) }) != 0 && errno != EEXIST {
                throw TensorIOError(path, "output directory cannot be created (\(systemError()))")
            }
        }
        var info = stat()
        guard FilePath.withSystemPath(path, { stat($0, &info) }) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw TensorIOError(path, "output directory cannot be created (\(systemError(ENOTDIR)))")
        }
    }

    /// Whether process `pid` exists and has not ended. A killed process that its parent has not
    /// reaped (a zombie: a rank killed under mpirun, in a container whose init never reaps) has
    /// ended.
    private static func isRunning(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let name = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(after: name)...].drop { $0 == " " }.first != "Z"
    }
}
