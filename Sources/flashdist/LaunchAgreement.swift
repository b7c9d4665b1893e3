import Distributed
import Foundation
import TensorIO

/// Under mpirun, before anything else, the ranks check that they run the same command on the
/// same inputs: a rank started with other arguments (an MPMD launch `A : B`) or seeing another
/// copy of an input file (a node with stale data) would otherwise compute a different problem,
/// write headers promising data that no rank writes, or wait forever in a collective call the
/// others never make. Each rank hashes its arguments, and the size and first bytes (the header)
/// of each .npy or .safetensors file they name; rank 0 reports the first difference, naming the
/// rank, and every rank exits.
enum LaunchAgreement {
    /// Bytes of each input file hashed: the whole .npy header, and a safetensors header of up to 64 KiB.
    static let headerBytes = 65_536

    static func check(_ arguments: [String], on communicator: Communicator) throws {
        guard communicator.isDistributed else { return }
        let hashes = try communicator.allgather([Int64(bitPattern: fnv1a(arguments.map { Array($0.utf8) + [0] }.joined()))])
        if let rank = hashes.firstIndex(where: { $0 != hashes[0] }) {
            throw TensorIOError("mpirun", "rank \(rank) was started with other arguments than rank 0; every rank must run the same command")
        }
        let files = arguments.filter { $0.hasSuffix(".npy") || $0.hasSuffix(".safetensors") }
        guard !files.isEmpty else { return }
        let mine = files.map { Int64(bitPattern: fingerprint($0)) }
        let all = try communicator.allgather(mine)
        for rank in 1..<communicator.size {
            if let index = files.indices.first(where: { all[rank * files.count + $0] != all[$0] }) {
                throw TensorIOError(files[index], "rank \(rank) sees another file than rank 0 (size or header differ, or it is missing on one)")
            }
        }
    }

    /// The file's size and first bytes, hashed; a file that cannot be read hashes its errno.
    private static func fingerprint(_ path: String) -> UInt64 {
        let descriptor = FilePath.withSystemPath(path) { open($0, O_RDONLY) }
        guard descriptor >= 0 else { return fnv1a([UInt8(truncatingIfNeeded: errno)]) }
        defer { close(descriptor) }
        var info = stat()
        fstat(descriptor, &info)
        var bytes = [UInt8](repeating: 0, count: headerBytes)
        let count = max(0, bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) })
        return fnv1a(withUnsafeBytes(of: Int64(info.st_size).littleEndian, Array.init) + bytes.prefix(count))
    }

    /// 64-bit FNV-1a: a plain, stable hash (Swift's Hasher is seeded per process).
    private static func fnv1a(_ bytes: some Sequence<UInt8>) -> UInt64 {
        bytes.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
    }
}
