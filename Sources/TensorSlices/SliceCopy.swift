extension AxisSlice {
    /// This slice of `whole` (an array shaped `shape`), dense and shaped `localShape`. When the
    /// slice is the whole array, `whole` itself: no copy.
    public func gather(_ whole: [Float]) -> [Float] {
        precondition(whole.count == shape.reduce(1, *), "array of \(whole.count) floats is not \(shapeText(shape))")
        if range.count == shape[axis] { return whole }
        if elementCount == 0 { return [] }
        return [Float](unsafeUninitializedCapacity: elementCount) { part, initialized in
            whole.withUnsafeBufferPointer { gather(from: $0.baseAddress!, into: part.baseAddress!) }
            initialized = elementCount
        }
    }

    /// Writes `part` (shaped `localShape`) over this slice of `whole`.
    public func scatter(_ part: [Float], into whole: inout [Float]) {
        precondition(part.count == elementCount && whole.count == shape.reduce(1, *), "arrays do not match the slice")
        if range.count == shape[axis] { whole = part; return }
        if elementCount == 0 { return }
        part.withUnsafeBufferPointer { part in
            whole.withUnsafeMutableBufferPointer { scatter(part.baseAddress!, into: $0.baseAddress!) }
        }
    }

    package func gather(from whole: UnsafePointer<Float>, into part: UnsafeMutablePointer<Float>) {
        let run = range.count * inner, stride = shape[axis] * inner
        for o in 0..<outer where run > 0 {
            (part + o * run).update(from: whole + o * stride + range.lowerBound * inner, count: run)
        }
    }

    package func scatter(_ part: UnsafePointer<Float>, into whole: UnsafeMutablePointer<Float>) {
        let run = range.count * inner, stride = shape[axis] * inner
        for o in 0..<outer where run > 0 {
            (whole + o * stride + range.lowerBound * inner).update(from: part + o * run, count: run)
        }
    }
}
