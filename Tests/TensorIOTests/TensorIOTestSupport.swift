import Foundation
import TensorIO
import Testing

// Shared helpers for the TensorIO tests: a scratch directory per test, and .npy files written
// byte by byte so that every header variant (versions, dtypes, orders) can be produced.

/// A fresh directory under the system temporary directory, removed when the test ends.
final class ScratchDirectory {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("tensorio-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }

    /// Writes `data` to `name` and returns its path.
    @discardableResult
    func write(_ name: String, _ data: Data) throws -> String {
        try data.write(to: URL(fileURLWithPath: file(name)))
        return file(name)
    }

    /// Names in a directory, hidden ones included.
    func entries(_ directory: String? = nil) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory ?? path)) ?? []).sorted()
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A .npy file built by hand: any descr, order and shape text, header version 1, 2 or 3, padded
/// so the data starts on a 64-byte boundary as NumPy writes it.
func handmadeNpy(descr: String, fortranOrder: Bool = false, shape: String, version: UInt8 = 1,
                 data: Data = Data()) -> Data {
    let lengthBytes = version == 1 ? 2 : 4
    var dict = "{'descr': '\(descr)', 'fortran_order': \(fortranOrder ? "True" : "False"), 'shape': \(shape), }"
    let unpadded = 8 + lengthBytes + dict.utf8.count + 1
    dict += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
    var bytes = Data([0x93] + Array("NUMPY".utf8) + [version, 0])
    let length = dict.utf8.count
    bytes.append(contentsOf: (0..<lengthBytes).map { UInt8(truncatingIfNeeded: length >> (8 * $0)) })
    bytes.append(contentsOf: Array(dict.utf8))
    bytes.append(data)
    return bytes
}

/// The raw little-endian bytes of an array of fixed-width values.
func rawBytes<T>(_ values: [T]) -> Data { values.withUnsafeBytes { Data($0) } }

/// Expects `body` to throw a TensorIOError for `path` whose message contains `fragment`, with the
/// path in its one-line description.
func expectTensorIOError<T>(_ path: String, contains fragment: String, _ body: () throws(TensorIOError) -> T,
                            sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        _ = try body()
        Issue.record("expected an error mentioning \"\(fragment)\"", sourceLocation: sourceLocation)
    } catch {
        #expect(error.path == path, sourceLocation: sourceLocation)
        #expect(error.description.hasPrefix(path + ": "), sourceLocation: sourceLocation)
        #expect(error.problem.contains(fragment), "message: \(error.problem)", sourceLocation: sourceLocation)
        #expect(!error.description.contains("\n"), sourceLocation: sourceLocation)
    }
}
