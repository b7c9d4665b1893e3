import Foundation
import TensorIO
import Testing

// Every malformed or unsupported file is refused with a one-line TensorIOError that names the
// file and says what is wrong, instead of crashing or returning garbage.

private let sixFloats = rawBytes([Float](repeating: 1, count: 6))

/// (file name, bytes, fragment the message must contain)
private let badFiles: [(String, Data, String)] = [
    ("truncated.npy", Npy.headerBytes(dtype: .float32, shape: [2, 3]) + sixFloats.dropLast(1), "truncated"),
    ("extra.npy", Npy.headerBytes(dtype: .float32, shape: [2, 3]) + sixFloats + Data([0]), "1 bytes beyond"),
    ("magic.npy", Data("NOTNUMPY".utf8) + sixFloats, "bad magic"),
    ("empty.npy", Data(), "bad magic"),
    ("bigendian.npy", handmadeNpy(descr: ">f4", shape: "(2, 3)", data: sixFloats), "big-endian"),
    ("complex.npy", handmadeNpy(descr: "<c8", shape: "(3,)", data: sixFloats), "unsupported dtype <c8"),
    ("fortran.npy", handmadeNpy(descr: "<f4", fortranOrder: true, shape: "(2, 3)", data: sixFloats), "Fortran order"),
    ("version.npy", handmadeNpy(descr: "<f4", shape: "(2, 3)", version: 4, data: sixFloats), "version 4"),
    ("header.npy", Npy.headerBytes(dtype: .float32, shape: [2, 3]).prefix(40), "truncated header"),
    ("shape.npy", handmadeNpy(descr: "<f4", shape: "(2, -3)", data: sixFloats), "malformed shape"),
]

@Test("malformed files are refused with the path in the message", arguments: 0..<badFiles.count)
func malformedFile(_ index: Int) throws {
    let dir = try ScratchDirectory()
    let (name, bytes, fragment) = badFiles[index]
    let path = try dir.write(name, bytes)
    expectTensorIOError(path, contains: fragment) { () throws(TensorIOError) in try Npy.readFloats(path) }
    expectTensorIOError(path, contains: fragment) { () throws(TensorIOError) in try Npy.readHeader(path) }
}

@Test func truncatedMessageGivesSizes() throws {
    let dir = try ScratchDirectory()
    let path = try dir.write("t.npy", Npy.headerBytes(dtype: .float64, shape: [2, 3]) + sixFloats)
    expectTensorIOError(path, contains: "shape (2, 3) of f8 needs 48 data bytes, file has 24") { () throws(TensorIOError) in
        try Npy.readFloats(path)
    }
}

@Test func missingFile() throws {
    let dir = try ScratchDirectory()
    let path = dir.file("absent.npy")
    expectTensorIOError(path, contains: "no such file") { () throws(TensorIOError) in try Npy.readFloats(path) }
}

@Test func directoryInsteadOfFile() throws {
    let dir = try ScratchDirectory()
    expectTensorIOError(dir.path, contains: "is a directory") { () throws(TensorIOError) in try Npy.readFloats(dir.path) }
}
