import Foundation
import TensorIO
import Testing

// Shared helpers for the CLI tests: finding the built `flashdist` next to this test bundle,
// running it as a subprocess, and writing/reading the .npy files it consumes and produces.

/// The `flashdist` executable of the build that produced this test bundle, in SwiftPM's products
/// directory: on Linux the test runner itself is an executable there (`Bundle.main`), on macOS
/// the `.xctest` bundle sits there.
let flashdistBinary: String? = {
    #if os(macOS)
    let products = Bundle.allBundles.first { $0.bundlePath.hasSuffix(".xctest") }?.bundleURL.deletingLastPathComponent()
    #else
    let products: URL? = Bundle.main.bundleURL
    #endif
    return products.map { $0.appendingPathComponent("flashdist").path }.flatMap {
        FileManager.default.isExecutableFile(atPath: $0) ? $0 : nil
    }
}()

struct CLIResult {
    let status: Int32
    let stdout: String
    let stderr: String
    var stderrLines: [Substring] { stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast() }
}

/// Runs `flashdist` with `arguments` (and `environment` added to this process's), capturing its
/// output through files (no pipe can fill up).
func runFlashdist(_ arguments: [String], in scratch: ScratchDirectory,
                  environment: [String: String] = [:]) throws -> CLIResult {
    let binary = try #require(flashdistBinary, "flashdist was not found in the products directory (\(Bundle.main.bundleURL.path)); build it first")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = arguments
    // No test depends on a tuning file the machine it runs on may hold (`flashdist tune`).
    process.environment = ProcessInfo.processInfo.environment.merging(["FLASHDIST_TUNING": "off"].merging(environment) { $1 }) { $1 }
    let outPath = scratch.file("stdout-\(UUID().uuidString)"), errPath = scratch.file("stderr-\(UUID().uuidString)")
    _ = FileManager.default.createFile(atPath: outPath, contents: nil)
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    try process.run()
    process.waitUntilExit()
    defer { for path in [outPath, errPath] { try? FileManager.default.removeItem(atPath: path) } }
    return CLIResult(status: process.terminationStatus,
                     stdout: try String(contentsOfFile: outPath, encoding: .utf8),
                     stderr: try String(contentsOfFile: errPath, encoding: .utf8))
}

/// A fresh directory, removed when the test ends.
final class ScratchDirectory {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("flashdist-cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }

    /// Writes a float32 .npy file and returns its path.
    @discardableResult
    func writeFloats(_ name: String, _ values: [Float], shape: [Int]) throws -> String {
        try write(name, values.withUnsafeBufferPointer { Npy.encode($0, shape: shape) })
    }

    @discardableResult
    func write(_ name: String, _ data: Data) throws -> String {
        try data.write(to: URL(fileURLWithPath: file(name)))
        return file(name)
    }

    /// Names in `directory` (hidden ones included); nil when it does not exist.
    func entries(_ directory: String) -> [String]? {
        (try? FileManager.default.contentsOfDirectory(atPath: directory))?.sorted()
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Reproducible values in (−1.5, 1.5) without any random source.
func pattern(_ count: Int, seed: Int) -> [Float] {
    (0..<count).map { Float(sin(Double($0 * 7 + seed * 131) * 0.61) * 1.5) }
}

/// Reads an output .npy, expecting its shape.
func readOutput(_ path: String, shape: [Int], sourceLocation: SourceLocation = #_sourceLocation) throws -> [Float] {
    let (found, values) = try Npy.readFloats(path)
    #expect(found == shape, "\(path)", sourceLocation: sourceLocation)
    return values
}
