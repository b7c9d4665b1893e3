import Foundation
import TensorIO
import Testing

// The .npy header is read as NumPy reads it (`ast.literal_eval` of a dict with exactly the keys
// descr, fortran_order, shape; the 10,000-byte limit): what NumPy refuses is refused, what it
// reads is read with the same shape (issue 9, finding 5).

/// A version-1 .npy file whose header is `dict` (padded with `padding`, then a newline) and
/// whose data is 64 × 2 × 16 float32 zeros unless given.
private func npy(_ dict: String, padding: Character = " ", data: Data = Data(count: 64 * 2 * 16 * 4)) -> Data {
    var text = dict
    text += String(repeating: padding, count: (64 - (10 + text.utf8.count + 1) % 64) % 64) + "\n"
    var bytes = Data([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(text.utf8.count & 0xff), UInt8(text.utf8.count >> 8)])
    bytes.append(contentsOf: Array(text.utf8))
    return bytes + data
}

@Test func headersNumPyReadsAreReadAlike() throws {
    let dir = try ScratchDirectory()
    for (name, dict) in [
        // The last of duplicate keys wins, as in a Python dict.
        ("duplicate", "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 32, 4, 16), 'shape': (1, 64, 2, 16)}"),
        // A string may hold anything, 'shape' included; quotes of either kind, escapes.
        ("quotes", "{\"descr\": \"<f4\", 'fortran_order': False, 'shape': (1, 64, 2, 16), }"),
        ("comment", "{'descr': '<f4', # the dtype\n 'fortran_order': False, 'shape': (1,64,2,16)}"),
        ("long", "{'descr': '<f4', 'fortran_order': False, 'shape': (1L, 64L, 2L, 16L), }"),
    ] {
        let path = try dir.write("\(name).npy", npy(dict))
        #expect(try Npy.readHeader(path).shape == [1, 64, 2, 16], "\(name)")
    }
}

@Test func headersNumPyRefusesAreRefused() throws {
    let dir = try ScratchDirectory()
    for (name, bytes, fragment) in [
        // A 'shape' inside a string value is not the shape; the extra key is refused, as NumPy does.
        ("note", npy("{'descr':'<f4','fortran_order':False,'note':\"'shape': (1, 32, 4, 16)\",'shape':(1,64,2,16)}"), "extra 'note'"),
        ("unclosed", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 64, 2, 16), junk"), "not a Python literal"),
        ("nul", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 64, 2, 16), }", padding: "\0"), "not a Python literal"),
        ("list", npy("{'descr': '<f4', 'fortran_order': False, 'shape': [1, 64, 2, 16]}"), "not a tuple"),
        ("missing", npy("{'descr': '<f4', 'shape': (1, 64, 2, 16)}"), "missing 'fortran_order'"),
        ("order", npy("{'descr': '<f4', 'fortran_order': 0, 'shape': (1, 64, 2, 16)}"), "fortran_order"),
        ("string", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 64, 2, 16), 'x': 'open}"), "unclosed string"),
    ] {
        let path = try dir.write("\(name).npy", bytes)
        expectTensorIOError(path, contains: fragment) { () throws(TensorIOError) in try Npy.readHeader(path) }
    }
}

@Test func headersAboveNumPysLimitAreRefusedWithoutReadingThem() throws {
    let dir = try ScratchDirectory()
    // A version 2 header claiming 100 MB, of which only the start exists: refused from its length.
    var bytes = Data([0x93] + Array("NUMPY".utf8) + [2, 0])
    bytes.append(contentsOf: withUnsafeBytes(of: UInt32(100_000_000).littleEndian, Array.init))
    bytes.append(contentsOf: Array("{'descr': '<f4', ".utf8))
    let path = try dir.write("huge.npy", bytes)
    expectTensorIOError(path, contains: "more than the 10000 NumPy reads") { () throws(TensorIOError) in try Npy.readHeader(path) }
}

@Test func overflowingShapesSayTooLarge() throws {
    let dir = try ScratchDirectory()
    let path = try dir.write("big.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4)}", data: Data()))
    expectTensorIOError(path, contains: "needs more than 2^63 data bytes") { () throws(TensorIOError) in try Npy.readHeader(path) }
}
