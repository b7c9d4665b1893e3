import Foundation

// The few file system calls the outputs need, made directly (not through Foundation) so that
// every failure has the system's own reason, and so that a path is handed to the system as the
// bytes it was given (`FilePath`).

/// The reason for the last failed system call, e.g. "No space left on device".
func systemError(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

/// The names in `directory` other than `.` and `..`; nil when it cannot be listed.
func directoryEntries(_ directory: String) -> [String]? {
    guard let stream = FilePath.withSystemPath(directory, { opendir($0) }) else { return nil }
    defer { closedir(stream) }
    var names: [String] = []
    while let entry = readdir(stream) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            FilePath.string(fromSystem: Array(raw.prefix { $0 != 0 }))
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// Removes an output set's directory: its files, then itself (a set holds no subdirectories).
func removeSet(_ directory: String) {
    for name in directoryEntries(directory) ?? [] { FilePath.withSystemPath("\(directory)/\(name)") { _ = unlink($0) } }
    FilePath.withSystemPath(directory) { _ = rmdir($0) }
}

/// Flushes a directory's entries (creations, renames) to the device.
func syncDirectory(_ directory: String) throws(TensorIOError) {
    let descriptor = FilePath.withSystemPath(directory) { open($0, O_RDONLY | O_DIRECTORY) }
    guard descriptor >= 0 else { throw TensorIOError(directory, "cannot be opened (\(systemError()))") }
    defer { close(descriptor) }
    guard fsync(descriptor) == 0 else { throw TensorIOError(directory, "cannot be synced to disk (\(systemError()))") }
}

/// Writes all of `bytes` at `offset`, retrying short writes; the error, if any, names `label`.
func writeFully(_ descriptor: Int32, _ bytes: some ContiguousBytes, at offset: Int, label: String) throws(TensorIOError) {
    let failure: Int32? = bytes.withUnsafeBytes { bytes in
        var done = 0
        while done < bytes.count {
            let count = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return count == 0 ? EIO : errno }
            done += count
        }
        return nil
    }
    if let failure { throw TensorIOError(label, "cannot be written (\(systemError(failure)))") }
}
