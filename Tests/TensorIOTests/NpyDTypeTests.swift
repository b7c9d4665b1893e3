import Foundation
import TensorIO
import Testing

// Files NumPy writes in other dtypes and header versions: float16 and float64 are converted to
// float32 on load, int32/int64 are read by readIntegers (and refused by readFloats), and
// versions 2.0 and 3.0 (4-byte header length) are read like 1.0.

@Test func float16IsConvertedExactly() throws {
    let dir = try ScratchDirectory()
    // Every float16 value is exact in float32: normals, the largest, a subnormal, ±inf, -0.
    let halves: [Float16] = [0.5, -2, 65504, 0.333251953125, Float16(bitPattern: 1), .infinity, -.infinity, -0.0]
    let path = try dir.write("h.npy", Npy.headerBytes(dtype: .float16, shape: [2, 4]) + rawBytes(halves))
    let read = try Npy.readFloats(path)
    #expect(read.shape == [2, 4])
    #expect(read.values.map(\.bitPattern) == halves.map { Float($0).bitPattern })
    #expect(read.values[4] == 0x1p-24)
}

@Test func float64IsRoundedToNearestFloat() throws {
    let dir = try ScratchDirectory()
    let doubles: [Double] = [1.0 / 3, -1e-3, 123456789.123, 0, 1e-50]
    let path = try dir.write("d.npy", Npy.headerBytes(dtype: .float64, shape: [5]) + rawBytes(doubles))
    let read = try Npy.readFloats(path)
    #expect(read.shape == [5])
    #expect(read.values == doubles.map { Float($0) })
    #expect(read.values[0] == 0.333333343)
}

@Test func integersAreReadByReadIntegers() throws {
    let dir = try ScratchDirectory()
    let ints32: [Int32] = [0, -1, .max, .min, 42, 7]
    let ints64: [Int64] = [1 << 40, -(1 << 50), 3]
    let p32 = try dir.write("i4.npy", Npy.headerBytes(dtype: .int32, shape: [2, 3]) + rawBytes(ints32))
    let p64 = try dir.write("i8.npy", Npy.headerBytes(dtype: .int64, shape: [3]) + rawBytes(ints64))
    let r32 = try Npy.readIntegers(p32), r64 = try Npy.readIntegers(p64)
    #expect(r32.shape == [2, 3] && r32.values == ints32.map(Int.init))
    #expect(r64.shape == [3] && r64.values == ints64.map(Int.init))
    // Each reader refuses the other kind, naming the dtype it found.
    expectTensorIOError(p32, contains: "i4") { () throws(TensorIOError) in try Npy.readFloats(p32) }
    let floats = try dir.write("f.npy", Npy.headerBytes(dtype: .float32, shape: [1]) + rawBytes([Float(1)]))
    expectTensorIOError(floats, contains: "f4") { () throws(TensorIOError) in try Npy.readIntegers(floats) }
}

@Test(arguments: [UInt8(2), 3])
func laterHeaderVersions(_ version: UInt8) throws {
    let dir = try ScratchDirectory()
    let values: [Float] = [1.5, -2.25, 3, 4, 5, 6]
    let path = try dir.write("v.npy", handmadeNpy(descr: "<f4", shape: "(3, 2)", version: version, data: rawBytes(values)))
    let read = try Npy.readFloats(path)
    #expect(read.shape == [3, 2] && read.values == values)
    #expect(try Npy.readHeader(path).dataOffset % 64 == 0)
}

/// '|' and '=' byte orders (and a double-quoted header) are native little-endian here too.
@Test func otherSpellingsOfTheHeader() throws {
    let dir = try ScratchDirectory()
    let values: [Float] = [7, 8]
    let equals = try dir.write("e.npy", handmadeNpy(descr: "=f4", shape: "(2,)", data: rawBytes(values)))
    #expect(try Npy.readFloats(equals).values == values)
    let doubleQuoted = Data([0x93] + Array("NUMPY".utf8) + [1, 0, 70, 0])
        + Data("{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2,), }".padding(toLength: 69, withPad: " ", startingAt: 0).utf8)
        + Data("\n".utf8) + rawBytes(values)
    let path = try dir.write("q.npy", doubleQuoted)
    #expect(try Npy.readFloats(path).values == values)
}
