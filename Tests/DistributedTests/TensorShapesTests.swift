import Distributed
import FlashAttention
import Testing
import TensorSlices

// The one rule of the files' layout of a variable-length batch: the partitions see it as one
// entry of all its packed rows, (1, total, heads, headDim), and its files are that without the
// leading 1.

@Test("a varlen batch's shapes and slices lose the leading axis in its files; a fixed-length one's do not")
func varlenFileLayout() throws {
    let varlen = TensorShapes(try AttentionProblem(heads: 4, kvHeads: 2, headDim: 8, queryOffsets: [0, 3, 10],
                                                   keyOffsets: [0, 5, 6], options: AttentionOptions(softmaxScale: 1)))
    #expect(varlen.query == [1, 10, 4, 8] && varlen.key == [1, 6, 2, 8] && varlen.lse == [1, 4, 10])
    #expect(varlen.inFile(varlen.query) == [10, 4, 8] && varlen.inFile(varlen.lse) == [4, 10])
    let rows = AxisSlice(shape: varlen.query, axis: 1, range: 3..<7)
    #expect(varlen.inFile(rows) == AxisSlice(shape: [10, 4, 8], axis: 0, range: 3..<7))
    let heads = AxisSlice(shape: varlen.lse, axis: 1, range: 1..<3)
    #expect(varlen.inFile(heads) == AxisSlice(shape: [4, 10], axis: 0, range: 1..<3))

    let fixed = TensorShapes(try AttentionProblem(batch: 2, seqlenQ: 5, seqlenK: 3, heads: 4, kvHeads: 2, headDim: 8,
                                                  options: AttentionOptions(softmaxScale: 1)))
    #expect(fixed.query == [2, 5, 4, 8] && fixed.inFile(fixed.lse) == [2, 4, 5])
    let part = AxisSlice(shape: fixed.query, axis: 2, range: 0..<2)
    #expect(fixed.inFile(part) == part)
}
