import Foundation
import TensorIO
import Testing

// Half-precision .npy files: float16 written and read back; bfloat16 in ml_dtypes' convention
// (descr '<V2', which np.save writes for an ml_dtypes.bfloat16 array), '|V2' and 'bfloat16' also
// read; float32 rounds to bfloat16 to nearest even.

@Test func bfloat16RoundsToNearestEvenAndReadsBack() throws {
    let dir = try ScratchDirectory()
    // 1 + 2⁻⁸ is halfway between bfloat16 1 and 1 + 2⁻⁷: ties to the even 1; 1 + 3·2⁻⁸ ties up
    // to 1 + 2⁻⁶; just above halfway rounds up; large values round to infinity; NaN stays NaN.
    let values: [Float] = [1 + 0x1p-8, 1 + 3 * 0x1p-8, 1 + 0x1p-8 + 0x1p-20, -3.0, 3.4e38, .infinity, .nan]
    let data = values.withUnsafeBufferPointer { Npy.encode($0, shape: [7], dtype: .bfloat16) }
    #expect(String(decoding: data.prefix(40), as: UTF8.self).contains("'descr': '<V2'"))
    let read = try Npy.readFloats(try dir.write("b.npy", data)).values
    let expected: [Float] = [1, 1 + 0x1p-6, 1 + 0x1p-7, -3, .infinity, .infinity]
    #expect(Array(read.prefix(6)) == expected)
    #expect(read[6].isNaN)
}

@Test func otherBfloat16DescrsAreRead() throws {
    let dir = try ScratchDirectory()
    let bits: [UInt16] = [0x3f80, 0xc000, 0x4049]
    for descr in ["|V2", "bfloat16"] {
        let path = try dir.write("b.npy", handmadeNpy(descr: descr, shape: "(3,)", data: rawBytes(bits)))
        #expect(try Npy.readFloats(path).values == [1, -2, 3.140625], "\(descr)")
    }
}

@Test func float16IsWrittenRounded() throws {
    let dir = try ScratchDirectory()
    let values: [Float] = [0.1, -65504, 1e-8, 70000]
    let data = values.withUnsafeBufferPointer { Npy.encode($0, shape: [2, 2], dtype: .float16) }
    let read = try Npy.readFloats(try dir.write("h.npy", data))
    #expect(read.shape == [2, 2])
    #expect(read.values == values.map { Float(Float16($0)) })
}
