import Foundation
import TensorIO
import TensorSlices
import Testing

// Npy.encode → file → Npy.readFloats must give back the shape and every bit of every value,
// for 0-, 1-, 2- and 4-dimensional shapes, empty ones, and special values.

private let shapes: [[Int]] = [[], [1], [7], [0], [3, 0, 2], [2, 3], [2, 3, 4, 5], [1, 1, 1, 1], [2, 0, 3, 4]]

@Test("encode then readFloats round-trips", arguments: shapes)
func roundTrip(_ shape: [Int]) throws {
    let dir = try ScratchDirectory()
    let count = shape.reduce(1, *)
    let specials: [Float] = [0, -0.0, .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude]
    let values = (0..<count).map { i in i < specials.count ? specials[i] : Float(i) * 0.37 - 5 }
    let path = try dir.write("a.npy", values.withUnsafeBufferPointer { Npy.encode($0, shape: shape) })
    let read = try Npy.readFloats(path)
    #expect(read.shape == shape)
    #expect(read.values.map(\.bitPattern) == values.map(\.bitPattern))
    let header = try Npy.readHeader(path)
    #expect(header.dtype == .float32 && header.shape == shape && header.elementCount == count)
    // NumPy aligns the data to 64 bytes; the file is exactly header plus data.
    #expect(header.dataOffset % 64 == 0)
    #expect(try Data(contentsOf: URL(fileURLWithPath: path)).count == header.dataOffset + 4 * count)
}

/// A NaN keeps its bits (payload included) through the file.
@Test func nanRoundTrips() throws {
    let dir = try ScratchDirectory()
    let values: [Float] = [.nan, Float(bitPattern: 0x7FC0_1234), -.nan]
    let path = try dir.write("n.npy", values.withUnsafeBufferPointer { Npy.encode($0, shape: [3]) })
    #expect(try Npy.readFloats(path).values.map(\.bitPattern) == values.map(\.bitPattern))
}

/// headerBytes writes what NumPy writes: version 1.0 and a Python dict with a trailing comma for
/// 1-D shapes. The handmade writer of these tests must agree with it byte for byte.
@Test func headerBytesMatchNumPyLayout() {
    let header = Npy.headerBytes(dtype: .float16, shape: [5])
    #expect(header == handmadeNpy(descr: "<f2", shape: "(5,)"))
    #expect(header.count % 64 == 0)
    #expect(Npy.headerBytes(dtype: .int64, shape: [2, 3]) == handmadeNpy(descr: "<i8", shape: "(2, 3)"))
    #expect(shapeText([2, 3]) == "(2, 3)" && shapeText([5]) == "(5,)" && shapeText([]) == "()")
}
