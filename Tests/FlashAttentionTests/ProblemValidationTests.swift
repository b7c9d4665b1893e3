import FlashAttention
import Testing

// AttentionProblem rejects every shape or option the kernels cannot honour with an AttentionError
// whose message names the bad value, and accepts the boundary values.

private let scale = AttentionOptions(softmaxScale: 0.5)

private func fixed(batch: Int = 1, seqlenQ: Int = 4, seqlenK: Int = 4, heads: Int = 2, kvHeads: Int = 1,
                   headDim: Int = 8, options: AttentionOptions = scale) throws(AttentionError) -> AttentionProblem {
    try AttentionProblem(batch: batch, seqlenQ: seqlenQ, seqlenK: seqlenK, heads: heads, kvHeads: kvHeads,
                         headDim: headDim, options: options)
}

/// Each invalid construction with a fragment its message must contain.
private let invalid: [(String, @Sendable () throws(AttentionError) -> AttentionProblem)] = [
    ("6", { () throws(AttentionError) in try fixed(heads: 6, kvHeads: 4) }),
    ("0", { () throws(AttentionError) in try fixed(heads: 0) }),
    ("0", { () throws(AttentionError) in try fixed(kvHeads: 0) }),
    ("0", { () throws(AttentionError) in try fixed(headDim: 0) }),
    ("257", { () throws(AttentionError) in try fixed(headDim: 257) }),
    ("-2", { () throws(AttentionError) in try fixed(options: AttentionOptions(softmaxScale: 1, windowLeft: -2)) }),
    ("-5", { () throws(AttentionError) in try fixed(options: AttentionOptions(softmaxScale: 1, windowRight: -5)) }),
    ("nan", { () throws(AttentionError) in try fixed(options: AttentionOptions(softmaxScale: .nan)) }),
    ("inf", { () throws(AttentionError) in try fixed(options: AttentionOptions(softmaxScale: .infinity)) }),
    ("inf", { () throws(AttentionError) in try fixed(options: AttentionOptions(softmaxScale: -.infinity)) }),
    ("0", { () throws(AttentionError) in try fixed(batch: 0) }),
    ("-1", { () throws(AttentionError) in try fixed(seqlenQ: -1) }),
    ("-1", { () throws(AttentionError) in try fixed(seqlenK: -1) }),
    ("query", { () throws(AttentionError) in
        try AttentionProblem(heads: 1, kvHeads: 1, headDim: 4, queryOffsets: [1, 3], keyOffsets: [0, 3], options: scale) }),
    ("key", { () throws(AttentionError) in
        try AttentionProblem(heads: 1, kvHeads: 1, headDim: 4, queryOffsets: [0, 3], keyOffsets: [0, 5, 4], options: scale) }),
    ("batch", { () throws(AttentionError) in
        try AttentionProblem(heads: 1, kvHeads: 1, headDim: 4, queryOffsets: [0, 3], keyOffsets: [0, 3, 6], options: scale) }),
    ("query", { () throws(AttentionError) in
        try AttentionProblem(heads: 1, kvHeads: 1, headDim: 4, queryOffsets: [0], keyOffsets: [0], options: scale) }),
]

@Test("invalid problems throw AttentionError", arguments: 0..<invalid.count)
func invalidProblemThrows(_ index: Int) {
    let (fragment, make) = invalid[index]
    do {
        _ = try make()
        Issue.record("case \(index) was accepted")
    } catch {
        #expect(error.description.lowercased().contains(fragment), "message: \(error.description)")
    }
}

/// A per-entry lse layout (batch, heads, seqlen_q) only exists when every entry has the same
/// number of queries; with varying lengths there is no such array, so the problem must be rejected
/// (accepting it lets the kernels index lse past lseElements).
@Test func unpackedLSERequiresEqualQueryLengths() {
    #expect(throws: AttentionError.self) {
        try AttentionProblem(heads: 1, kvHeads: 1, headDim: 4, queryOffsets: [0, 5, 75], keyOffsets: [0, 3, 70],
                             packedLSE: false, options: scale)
    }
}

@Test func boundaryValuesAreAccepted() throws {
    for headDim in [1, 256] { #expect(try fixed(headDim: headDim).headDim == headDim) }
    let p = try fixed(batch: 3, seqlenQ: 0, seqlenK: 0, heads: 6, kvHeads: 3, headDim: 8,
                      options: AttentionOptions(softmaxScale: 0, causal: true, windowLeft: 0, windowRight: -1))
    #expect(p.groupSize == 2 && p.batch == 3 && p.queryElements == 0 && p.lseElements == 0)
    _ = try fixed(options: AttentionOptions(softmaxScale: -2, windowLeft: -1, windowRight: 0))
}

@Test func sizesAndFlops() throws {
    let p = try fixed(batch: 2, seqlenQ: 3, seqlenK: 5, heads: 4, kvHeads: 2, headDim: 8)
    #expect(p.queryElements == 2 * 3 * 4 * 8 && p.keyElements == 2 * 5 * 2 * 8 && p.lseElements == 2 * 4 * 3)
    #expect(p.queryOffsets == [0, 3, 6] && p.keyOffsets == [0, 5, 10] && !p.packedLSE)
    #expect(p.forwardFlops == 4 * 2 * 3 * 5 * 4 * 8)
    let causal = try fixed(batch: 2, seqlenQ: 3, seqlenK: 5, heads: 4, kvHeads: 2, headDim: 8,
                           options: AttentionOptions(softmaxScale: 1, causal: true))
    #expect(causal.forwardFlops == 2 * 2 * 3 * 5 * 4 * 8)
}

/// Each rule's own case, carrying the values a caller words it with (the command line names the
/// file or option from them).
private let typed: [(AttentionError, @Sendable () throws(AttentionError) -> AttentionProblem)] = [
    (.headsNotMultipleOfKVHeads(heads: 6, kvHeads: 4), { () throws(AttentionError) in try fixed(heads: 6, kvHeads: 4) }),
    (.headsBelowOne(heads: 2, kvHeads: 0), { () throws(AttentionError) in try fixed(kvHeads: 0) }),
    (.headDimOutOfRange(257), { () throws(AttentionError) in try fixed(headDim: 257) }),
    (.batchBelowOne(0), { () throws(AttentionError) in try fixed(batch: 0) }),
    (.negativeSequenceLength(query: 4, key: -1), { () throws(AttentionError) in try fixed(seqlenK: -1) }),
    (.windowOutOfRange(left: -2, right: -1),
     { () throws(AttentionError) in try fixed(options: AttentionOptions(softmaxScale: 1, windowLeft: -2)) }),
    (.softcapOutOfRange(-1), { () throws(AttentionError) in try fixed(options: AttentionOptions(softmaxScale: 1, softcap: -1)) }),
    (.dropoutOutOfRange(1),
     { () throws(AttentionError) in try fixed(options: AttentionOptions(softmaxScale: 1, dropout: Dropout(probability: 1, seed: 0))) }),
    (.offsetsNotStartingAtZero(keys: false, first: 1), { () throws(AttentionError) in
        try AttentionProblem(heads: 1, kvHeads: 1, headDim: 4, queryOffsets: [1, 3], keyOffsets: [0, 3], options: scale) }),
    (.offsetsDecreasing(keys: true, index: 2, previous: 5, next: 4), { () throws(AttentionError) in
        try AttentionProblem(heads: 1, kvHeads: 1, headDim: 4, queryOffsets: [0, 3, 4], keyOffsets: [0, 5, 4], options: scale) }),
    (.offsetBatchesDiffer(queries: 1, keys: 2), { () throws(AttentionError) in
        try AttentionProblem(heads: 1, kvHeads: 1, headDim: 4, queryOffsets: [0, 3], keyOffsets: [0, 3, 6], options: scale) }),
    (.offsetsTooFew(keys: false), { () throws(AttentionError) in
        try AttentionProblem(heads: 1, kvHeads: 1, headDim: 4, queryOffsets: [0], keyOffsets: [0], options: scale) }),
    (.alibiSlopeCount(values: 3, heads: 2, batch: 1), { () throws(AttentionError) in
        try fixed(options: AttentionOptions(softmaxScale: 1, alibiSlopes: AlibiSlopes(values: [1, 2, 3], heads: 2))) }),
]

@Test("each rule throws its own case", arguments: 0..<typed.count)
func typedCases(_ index: Int) {
    let (expected, make) = typed[index]
    #expect(throws: expected) { try make() }
}
