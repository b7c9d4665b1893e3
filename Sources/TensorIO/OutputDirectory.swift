import Foundation

/// A directory that receives a run's outputs all at once or not at all.
///
/// Each output is first written to a temporary name inside the directory (so the final rename
/// stays on one file system and is atomic); `commit` renames them into place only once all are
/// written, and `discard` removes them. Temporaries are named `.flashdist-tmp-PID-NAME`, so a
/// later run can recognise and remove the ones a killed run left behind.
public final class OutputDirectory {
    public let path: String
    private let tag: String
    private var staged: [String] = []

    /// Creates the directory if needed, proves it writable, and removes temporaries left by runs
    /// that are no longer alive.
    public init(_ path: String, tag: String = String(getpid())) throws(TensorIOError) {
        self.path = path
        self.tag = tag
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw TensorIOError(path, "output directory cannot be created (\(OutputDirectory.reason(error)))")
        }
        removeAbandonedTemporaries()
        let probe = temporaryPath(for: "probe")
        guard FileManager.default.createFile(atPath: probe, contents: Data()) else {
            throw TensorIOError(path, "output directory is not writable")
        }
        try? FileManager.default.removeItem(atPath: probe)
    }

    public func temporaryPath(for name: String) -> String { OutputDirectory.temporaryPath(in: path, tag: tag, name: name) }

    /// The temporary name of `name` for a run tagged `tag`: what writers other than the one that
    /// prepared the directory (other ranks) write into.
    public static func temporaryPath(in path: String, tag: String, name: String) -> String {
        "\(path)/.flashdist-tmp-\(tag)-\(name)"
    }
    public func finalPath(for name: String) -> String { "\(path)/\(name)" }

    /// Writes `data` under the temporary name of `name`.
    public func stage(_ name: String, _ data: Data) throws(TensorIOError) {
        let temporary = temporaryPath(for: name)
        staged.append(name)
        do {
            try data.write(to: URL(fileURLWithPath: temporary))
        } catch {
            throw TensorIOError(finalPath(for: name), "cannot be written (\(OutputDirectory.reason(error)))")
        }
    }

    /// Writes `data` at byte `offset` of the staged temporary of `name` (a tensor's place in a file
    /// whose header `stage` wrote).
    public func write(_ name: String, _ data: Data, at offset: Int) throws(TensorIOError) {
        let descriptor = open(temporaryPath(for: name), O_WRONLY)
        guard descriptor >= 0 else { throw TensorIOError(finalPath(for: name), "cannot be written (\(String(cString: strerror(errno))))") }
        defer { close(descriptor) }
        var done = 0
        while done < data.count {
            let count = data.withUnsafeBytes { pwrite(descriptor, $0.baseAddress! + done, $0.count - done, off_t(offset + done)) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw TensorIOError(finalPath(for: name), "cannot be written (\(String(cString: strerror(errno))))") }
            done += count
        }
    }

    /// Records a file that another writer (another rank, say) filled under its temporary name.
    public func adopt(_ name: String) { staged.append(name) }

    /// Renames every staged output into place.
    public func commit() throws(TensorIOError) {
        for name in staged where rename(temporaryPath(for: name), finalPath(for: name)) != 0 {
            throw TensorIOError(finalPath(for: name), "cannot be renamed into place (\(String(cString: strerror(errno))))")
        }
        staged.removeAll()
    }

    /// Removes every staged temporary.
    public func discard() {
        for name in staged { unlink(temporaryPath(for: name)) }
        staged.removeAll()
    }

    private func removeAbandonedTemporaries() {
        let prefix = ".flashdist-tmp-"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] where entry.hasPrefix(prefix) {
            let owner = String(entry.dropFirst(prefix.count).prefix { $0 != "-" })
            let alive = Int32(owner).map(OutputDirectory.isRunning) ?? false
            if owner != tag && !alive { unlink("\(path)/\(entry)") }
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

    /// The system's reason (e.g. "Not a directory") rather than Foundation's generic wrapper.
    private static func reason(_ error: Error) -> String {
        let error = error as NSError
        if let posix = (error.userInfo[NSUnderlyingErrorKey] as? NSError) ?? (error.domain == NSPOSIXErrorDomain ? error : nil) {
            return String(cString: strerror(Int32(posix.code)))
        }
        return error.localizedFailureReason ?? error.localizedDescription
    }
}
