import Dispatch
import Synchronization

/// Runs tiles on `threads` Dispatch workers, each with its own scratch memory carved from one
/// allocation made per call.
///
/// Workers take the next tile from a shared counter over the tiles sorted by decreasing cost, so
/// the long tiles start first and the short ones fill in at the end (longest-processing-time
/// first), or, for tiles already ordered to share data and to end on short ones, in their order.
/// Each tile writes only its own outputs and fully initialises the scratch it reads, so
/// results do not depend on which worker ran which tile, nor on the thread count.
package struct TileScheduler {
    package let threads: Int

    package init(threads: Int) { self.threads = max(1, threads) }

    package func run(_ tiles: [Tile], scratchFloats: Int, inOrder: Bool = false,
             _ body: (Tile, UnsafeMutablePointer<Float>) -> Void) {
        guard !tiles.isEmpty else { return }
        let order = inOrder ? tiles : tiles.sorted { $0.cost > $1.cost }
        let workers = min(threads, order.count)
        let stride = roundUpToLanes(scratchFloats)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, workers * stride))
        defer { scratch.deallocate() }
        let next = Atomic<Int>(0)
        withoutActuallyEscaping(body) { body in
            // Workers share raw pointers: each tile writes only its own outputs and scratch.
            let shared = UncheckedSendable(value: (body: body, scratch: scratch))
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                let mine = shared.value.scratch + worker * stride
                while true {
                    let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
                    if index >= order.count { break }
                    shared.value.body(order[index], mine)
                }
            }
        }
    }
}

/// Lets the scheduler hand pointers to its workers; safety comes from the tiles' disjoint writes.
package struct UncheckedSendable<Value>: @unchecked Sendable {
    package let value: Value

    package init(value: Value) { self.value = value }
}

/// One vector of real memory, allocated once and never freed or read: the address that stands for
/// an empty buffer (which no tile touches; Swift gives those no base address) and the base of a
/// carver that only counts.
package enum Placeholder {
    nonisolated(unsafe) package static let vector: UnsafeMutablePointer<Float> = {
        let vector = UnsafeMutablePointer<Float>.allocate(capacity: lanes)
        vector.initialize(repeating: 0, count: lanes)
        return vector
    }()
}

extension UnsafeMutableBufferPointer<Float> {
    /// The base address; for an empty buffer the placeholder.
    package var start: UnsafeMutablePointer<Float> { baseAddress ?? Placeholder.vector }
}

extension UnsafeBufferPointer<Float> {
    /// The base address; for an empty buffer the placeholder.
    package var start: UnsafePointer<Float> { baseAddress ?? UnsafePointer(Placeholder.vector) }
}

/// Hands out consecutive pieces of one scratch area.
package struct ScratchCarver {
    private var cursor: UnsafeMutablePointer<Float>
    /// False for a carver that only counts: every piece is then the placeholder, never used.
    private let advances: Bool
    package private(set) var floats = 0

    package init(_ base: UnsafeMutablePointer<Float>) { (cursor, advances) = (base, true) }

    private init(counting: ()) { (cursor, advances) = (Placeholder.vector, false) }

    /// How many floats `carve` takes, found by a carve whose pieces are never dereferenced.
    package static func floats<T>(_ carve: (inout ScratchCarver) -> T) -> Int {
        var counter = ScratchCarver(counting: ())
        _ = carve(&counter)
        return counter.floats
    }

    package mutating func take(_ count: Int) -> UnsafeMutablePointer<Float> {
        let piece = cursor
        let padded = roundUpToLanes(count)
        if advances { cursor += padded }
        floats += padded
        return piece
    }
}

/// Floats per vector in every kernel (SIMD16: one zmm register, or two ymm): scratch pieces,
/// padded widths and row blocks are whole vectors.
@inlinable package var lanes: Int { 16 }

@inlinable package func roundUpToLanes(_ x: Int) -> Int { (x + lanes - 1) / lanes * lanes }
