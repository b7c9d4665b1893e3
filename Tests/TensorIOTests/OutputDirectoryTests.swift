import Foundation
import TensorIO
import Testing

// OutputDirectory switches DIR from one complete set of outputs to the next in one rename:
// before commit nothing a reader sees changes, after it the new set is complete and verified by
// its manifest, names the new set lacks are gone, discard leaves DIR as it was, an unusable
// location fails up front, and what dead runs left is swept by the next run.

/// Writes a set of `files` (name → bytes) into `path` and commits it.
private func writeSet(_ path: String, _ files: [String: [UInt8]]) throws {
    let directory = try OutputDirectory(path, names: files.keys.sorted())
    for (name, bytes) in files.sorted(by: { $0.key < $1.key }) {
        try directory.create(name, header: Data(bytes.prefix(2)), size: bytes.count)
        try directory.write(name, Data(bytes.dropFirst(2)), at: 2)
    }
    try directory.commit()
}

private func contents(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

@Test func commitMakesTheWholeSetAppear() throws {
    let dir = try ScratchDirectory()
    let out = dir.file("out/nested")   // created with its parents
    let directory = try OutputDirectory(out, names: ["a.npy", "b.npy"])
    try directory.create("a.npy", header: Data([1]), size: 3)
    try directory.write("a.npy", Data([2, 3]), at: 1)
    try directory.create("b.npy", header: Data([4]), size: 1)
    // Before commit nothing is visible but the new set's directory.
    #expect(dir.entries(out).filter { !$0.hasPrefix(".flashdist-set-") }.isEmpty)
    try directory.commit()
    #expect(try OutputDirectory.verifiedSet(in: out) == ["a.npy", "b.npy"])
    #expect(try contents("\(out)/a.npy") == [1, 2, 3])
    #expect(try contents("\(out)/b.npy") == [4])
    let manifest = try String(contentsOfFile: "\(out)/\(OutputDirectory.manifestName)", encoding: .utf8)
    // zlib.crc32(bytes([1, 2, 3])) == 1438416925
    #expect(manifest.contains("{\"name\": \"a.npy\", \"bytes\": 3, \"crc32\": 1438416925}"), "\(manifest)")
}

@Test func aNewSetReplacesTheEarlierOneWhole() throws {
    let dir = try ScratchDirectory()
    try dir.write("o.npy", Data([9, 9]))       // a plain file of an earlier version is replaced
    try writeSet(dir.path, ["o.npy": [1, 1, 1], "dq.npy": [2, 2, 2], "dk.npy": [3, 3, 3]])
    try writeSet(dir.path, ["o.npy": [5, 5, 5, 5], "lse.npy": [6, 6, 6]])
    #expect(try OutputDirectory.verifiedSet(in: dir.path) == ["lse.npy", "o.npy"])
    #expect(try contents(dir.file("o.npy")) == [5, 5, 5, 5])
    // dq and dk belonged to the earlier set only: gone, and so is that set's directory.
    #expect(dir.entries().filter { !$0.hasPrefix(".") }.sorted() == ["flashdist-manifest.json", "lse.npy", "o.npy"])
    #expect(dir.entries().filter { $0.hasPrefix(".flashdist-set-") }.count == 1)
}

@Test func discardLeavesTheEarlierSet() throws {
    let dir = try ScratchDirectory()
    try writeSet(dir.path, ["o.npy": [1, 2, 3]])
    let before = dir.entries()
    let directory = try OutputDirectory(dir.path, names: ["o.npy", "dq.npy"])
    try directory.create("o.npy", header: Data([7]), size: 1)
    directory.discard()
    #expect(dir.entries() == before)
    #expect(try OutputDirectory.verifiedSet(in: dir.path) == ["o.npy"])
    #expect(try contents(dir.file("o.npy")) == [1, 2, 3])
}

@Test func aDirectoryWhereAnOutputGoesFailsUpFront() throws {
    let dir = try ScratchDirectory()
    try FileManager.default.createDirectory(atPath: dir.file("dv.npy"), withIntermediateDirectories: false)
    do {
        _ = try OutputDirectory(dir.path, names: ["o.npy", "dv.npy"])
        Issue.record("a directory named like an output was accepted")
    } catch {
        #expect(error.path == dir.file("dv.npy") && error.problem.contains("is a directory"), "\(error)")
    }
    #expect(dir.entries() == ["dv.npy"])
}

@Test func aFileThatCannotBeFilledFails() throws {
    let dir = try ScratchDirectory()
    let directory = try OutputDirectory(dir.path, names: ["o.npy"])
    try directory.create("o.npy", header: Data([1]), size: 3)
    // A file whose size is not the layout's (a writer that went past its end) is refused
    // before the switch.
    let staged = directory.stagedPath(for: "o.npy")
    #expect(truncate(staged, 5) == 0)
    #expect(throws: TensorIOError.self) { try directory.commit() }
    directory.discard()
    #expect(dir.entries().isEmpty)
}

@Test func pathUnderARegularFileThrows() throws {
    let dir = try ScratchDirectory()
    let file = try dir.write("plain", Data([7]))
    let out = file + "/out"
    do {
        _ = try OutputDirectory(out, names: ["o.npy"])
        Issue.record("a directory under a regular file was accepted")
    } catch {
        #expect(error.path == out && error.problem.contains("cannot be created"), "\(error)")
    }
    #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == Data([7]))
}

@Test func regularFileAsTheDirectoryThrows() throws {
    let dir = try ScratchDirectory()
    let file = try dir.write("plain", Data([7]))
    #expect(throws: TensorIOError.self) { try OutputDirectory(file, names: ["o.npy"]) }
}

@Test func whatDeadRunsLeftIsRemoved() throws {
    let dir = try ScratchDirectory()
    try writeSet(dir.path, ["o.npy": [1, 2, 3]])
    // A pid above the kernel's pid_max (at most 2²²) can belong to no live process.
    let deadSet = ".flashdist-set-99999999-1", deadLink = ".flashdist-link-99999999-1-o.npy", legacy = ".flashdist-tmp-99999999-x"
    let liveSet = ".flashdist-set-\(getppid())-1"       // the parent of this test process is alive
    for set in [deadSet, liveSet] {
        try FileManager.default.createDirectory(atPath: dir.file(set), withIntermediateDirectories: false)
        try dir.write("\(set)/o.npy", Data([1]))
    }
    try dir.write(legacy, Data([1]))
    #expect(symlink(".flashdist-current/x.npy", dir.file(deadLink)) == 0)
    let directory = try OutputDirectory(dir.path, names: ["o.npy"])
    let left = dir.entries()
    #expect(!left.contains(deadSet) && !left.contains(deadLink) && !left.contains(legacy), "\(left)")
    #expect(left.contains(liveSet))
    directory.discard()
    #expect(try OutputDirectory.verifiedSet(in: dir.path) == ["o.npy"])
}

@Test func verifiedSetRefusesAMix() throws {
    let dir = try ScratchDirectory()
    try writeSet(dir.path, ["o.npy": [1, 2, 3]])
    try dir.write("dq.npy", Data([4]))                 // an output of no set
    #expect(throws: TensorIOError.self) { try OutputDirectory.verifiedSet(in: dir.path) }
    try FileManager.default.removeItem(atPath: dir.file("dq.npy"))
    #expect(try OutputDirectory.verifiedSet(in: dir.path) == ["o.npy"])
    let file = try FileManager.default.destinationOfSymbolicLink(atPath: dir.file(".flashdist-current"))
    try dir.write("\(file)/o.npy", Data([1, 2, 4]))    // changed after the manifest
    #expect(throws: TensorIOError.self) { try OutputDirectory.verifiedSet(in: dir.path) }
}
