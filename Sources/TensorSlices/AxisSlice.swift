/// A contiguous range along one axis of a C-order array: the part of a tensor that one rank reads,
/// holds or writes (a range of heads, or of sequence rows).
public struct AxisSlice: Equatable, Sendable {
    /// The shape of the whole array.
    public let shape: [Int]
    public let axis: Int
    public let range: Range<Int>

    public init(shape: [Int], axis: Int, range: Range<Int>) {
        precondition(shape.indices.contains(axis) && range.lowerBound >= 0 && range.upperBound <= shape[axis],
                     "slice \(range) of axis \(axis) is outside shape \(shapeText(shape))")
        (self.shape, self.axis, self.range) = (shape, axis, range)
    }

    /// The whole array, as a slice of itself.
    public static func whole(_ shape: [Int]) -> AxisSlice {
        AxisSlice(shape: shape, axis: 0, range: 0..<(shape.first ?? 1))
    }

    /// The shape of the part this slice selects.
    public var localShape: [Int] {
        var local = shape
        local[axis] = range.count
        return local
    }

    public var elementCount: Int { localShape.reduce(1, *) }

    /// The same part of an array whose last axis is `width` long: a partition's slice of q or k
    /// applied to o or v, whose rows have the value head dim.
    public func withLastAxis(_ width: Int) -> AxisSlice {
        precondition(axis < shape.count - 1, "the slice cuts the last axis")
        return AxisSlice(shape: shape.dropLast() + [width], axis: axis, range: range)
    }

    /// The slice as `outer` runs of `range.count × inner` contiguous elements, one every
    /// `shape[axis] × inner` elements.
    public var outer: Int { shape[..<axis].reduce(1, *) }
    public var inner: Int { shape[(axis + 1)...].reduce(1, *) }
}
