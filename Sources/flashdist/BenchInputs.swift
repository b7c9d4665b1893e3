import ArgumentParser
import AttentionReference
import FlashAttention
import TensorIO
import TensorSlices

/// The benchmark's q, k, v and dO: standard normals drawn in that order from one seeded stream.
/// A rank draws only its part of each tensor by jumping to each element's global index, so every
/// rank count and partition benchmarks exactly the problem the threaded run does.
struct BenchInputs {
    let q, k, v, dO: [Float]

    /// The parts `queries` of q and dO (one after the other) and `keys` of k and v (those of dO
    /// and v with the value head dim last).
    init(_ problem: AttentionProblem, queries: [AxisSlice], keys: AxisSlice) {
        let (queryCount, keyCount, valueCount) = (problem.queryElements, problem.keyElements, problem.valueElements)
        let dv = problem.valueHeadDim
        q = queries.flatMap { Self.draw($0, from: 0) }
        k = Self.draw(keys, from: queryCount)
        v = Self.draw(keys.withLastAxis(dv), from: queryCount + keyCount)
        dO = queries.flatMap { Self.draw($0.withLastAxis(dv), from: queryCount + keyCount + valueCount) }
    }

    static let seed: UInt64 = 2026

    /// The elements of `slice` of a tensor whose first element is normal number `start` of the stream.
    private static func draw(_ slice: AxisSlice, from start: Int) -> [Float] {
        let run = slice.range.count * slice.inner, stride = slice.shape[slice.axis] * slice.inner
        var values = [Float]()
        values.reserveCapacity(slice.elementCount)
        for outer in 0..<slice.outer {
            var normals = SeededNormals(seed: seed, skipping: start + outer * stride + slice.range.lowerBound * slice.inner)
            values += normals.next(run)
        }
        return values
    }
}

/// `bench --sinks`: the sink logits the benchmark runs with.
enum BenchSinks: String, ExpressibleByArgument, CaseIterable {
    case zero, random

    /// One per head; random ones are the normals that follow the `after` normals of q, k, v and
    /// dO in the inputs' stream, the same on every rank.
    func values(heads: Int, after: Int) -> [Float] {
        guard self == .random else { return [Float](repeating: 0, count: heads) }
        var normals = SeededNormals(seed: BenchInputs.seed, skipping: after)
        return normals.next(heads)
    }
}
