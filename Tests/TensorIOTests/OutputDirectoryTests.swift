import Foundation
import TensorIO
import Testing

// OutputDirectory makes a run's outputs appear all at once or not at all: staged files stay
// under temporary names until commit, discard leaves nothing behind, an unusable location fails
// up front, and temporaries of dead runs are swept on the next init.

@Test func commitMakesEveryFileAppear() throws {
    let dir = try ScratchDirectory()
    let out = dir.file("out/nested")   // created with its parents
    let directory = try OutputDirectory(out)
    try directory.stage("a.npy", Data([1, 2, 3]))
    try directory.stage("b.npy", Data([4]))
    // Before commit only temporaries exist, under the documented names.
    #expect(dir.entries(out) == [".flashdist-tmp-\(getpid())-a.npy", ".flashdist-tmp-\(getpid())-b.npy"])
    try directory.commit()
    #expect(dir.entries(out) == ["a.npy", "b.npy"])
    #expect(try Data(contentsOf: URL(fileURLWithPath: directory.finalPath(for: "a.npy"))) == Data([1, 2, 3]))
    #expect(try Data(contentsOf: URL(fileURLWithPath: "\(out)/b.npy")) == Data([4]))
}

@Test func commitReplacesAnExistingFile() throws {
    let dir = try ScratchDirectory()
    try dir.write("o.npy", Data([9, 9]))
    let directory = try OutputDirectory(dir.path)
    try directory.stage("o.npy", Data([1]))
    try directory.commit()
    #expect(try Data(contentsOf: URL(fileURLWithPath: dir.file("o.npy"))) == Data([1]))
    #expect(dir.entries() == ["o.npy"])
}

@Test func discardLeavesNothing() throws {
    let dir = try ScratchDirectory()
    let out = dir.file("out")
    let directory = try OutputDirectory(out)
    try directory.stage("a.npy", Data([1]))
    try directory.stage("b.npy", Data([2]))
    directory.discard()
    #expect(dir.entries(out) == [])
    // A commit after discard has nothing left to rename.
    try directory.commit()
    #expect(dir.entries(out) == [])
}

@Test func pathUnderARegularFileThrows() throws {
    let dir = try ScratchDirectory()
    let file = try dir.write("plain", Data([7]))
    let out = file + "/out"
    do {
        _ = try OutputDirectory(out)
        Issue.record("a directory under a regular file was accepted")
    } catch {
        #expect(error.path == out && error.problem.contains("cannot be created"), "\(error)")
    }
    #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == Data([7]))
}

@Test func regularFileAsTheDirectoryThrows() throws {
    let dir = try ScratchDirectory()
    let file = try dir.write("plain", Data([7]))
    #expect(throws: TensorIOError.self) { try OutputDirectory(file) }
}

@Test func staleTemporariesOfDeadRunsAreRemoved() throws {
    let dir = try ScratchDirectory()
    // A pid above the kernel's pid_max (at most 2²²) can belong to no live process.
    let dead = ".flashdist-tmp-99999999-x"
    let live = ".flashdist-tmp-\(getppid())-y"       // the parent of this test process is alive
    let unrelated = ["o.npy", ".hidden", "flashdist-tmp-99999999-x"]
    for name in [dead, live] + unrelated { try dir.write(name, Data([1])) }
    _ = try OutputDirectory(dir.path)
    #expect(dir.entries() == ([live] + unrelated).sorted())
}

@Test func ownTagIsNotSwept() throws {
    let dir = try ScratchDirectory()
    try dir.write(".flashdist-tmp-12345678-a.npy", Data([1]))   // dead pid, but our tag
    let directory = try OutputDirectory(dir.path, tag: "12345678")
    #expect(dir.entries() == [".flashdist-tmp-12345678-a.npy"])
    #expect(directory.temporaryPath(for: "a.npy") == dir.file(".flashdist-tmp-12345678-a.npy"))
}
