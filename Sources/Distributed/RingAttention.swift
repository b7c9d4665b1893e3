import FlashAttention
import TensorSlices

/// `--partition ring` (context parallelism): rank r holds a window of the query rows and a run of
/// whole key blocks of every head (`RingLayout`), so no rank ever holds the full sequence, and
/// keys and values travel between ranks while the rank computes.
///
/// The results are bitwise those of one process (`WindowAttention`), for any rank count: each
/// rank visits the key blocks in key order, ranks of earlier keys first. Where every rank needs
/// every other rank's keys, they pass from each rank to the next around the ring, each rank
/// handing on what it received before it computes on it (`RingLayout.relaysKeys`); otherwise
/// each rank takes them straight from their owner. The per-head dK/dV sums
/// of each key block pass from the ranks of earlier rows to those of later ones, a pipeline in
/// row order, the last rank adding the heads of each group and sending the block's dK and dV to
/// its owner (`RingBackward`). Receives are posted ahead (two sets of key/value buffers in flight
/// in the forward, one item ahead in the backward), every send starts as soon as its data exists,
/// and transfers move on while the rank computes (`Message.progressing`). Only a rank with no
/// rows at all is sent keys its rows never see (to hand them on).
public struct RingAttention: AttentionPartition {
    let problem: AttentionProblem
    let shapes: TensorShapes
    let layout: RingLayout
    public let communicator: Communicator
    let threads: Int
    let gradientLayout: KeyGradientLayout
    let configuration: KernelConfiguration

    /// With `.perQueryHead` the backward returns each query head's own dK and dV (`keyGradients`
    /// then holds `heads` rather than `kvHeads` per row), for a caller that splits a GQA group.
    /// `configuration` must be the same on every rank (`KernelConfiguration.agreed`): its tiles
    /// cut the keys into blocks and the rows into the blocks one process would use.
    public init(problem: AttentionProblem, communicator: Communicator, threads: Int,
                keyGradients: KeyGradientLayout = .summedOverGroup, configuration: KernelConfiguration = .current) {
        (self.problem, self.communicator, self.threads, gradientLayout) = (problem, communicator, threads, keyGradients)
        self.configuration = configuration
        shapes = TensorShapes(problem)
        layout = RingLayout(problem, ranks: communicator.size, tiling: configuration.tiling)
    }

    private var rank: Int { communicator.rank }
    public var queries: [AxisSlice] { layout.windows(rank).map { AxisSlice(shape: shapes.query, axis: 1, range: $0) } }
    public var keys: AxisSlice { AxisSlice(shape: shapes.key, axis: 1, range: layout.keys(rank)) }
    public var keyGradients: AxisSlice { keys }
    public var lse: [AxisSlice] { layout.windows(rank).map { AxisSlice(shape: shapes.lse, axis: 2, range: $0) } }
    /// The parts of o and dO.
    private var outputs: [AxisSlice] { queries.map { $0.withLastAxis(shapes.valueHeadDim) } }

    /// `values` (the parts of a query-, output- or lse-shaped tensor one after the other) window by window.
    private func split(_ values: [Float], _ parts: [AxisSlice]) -> [[Float]] {
        var start = 0
        return parts.map { part in
            defer { start += part.elementCount }
            return Array(values[start..<start + part.elementCount])
        }
    }

    public func forward(q: [Float], k: [Float], v: [Float]) throws(MPIError)
        -> (o: [Float], lse: [Float], lseResidual: [Float], saved: SavedForward) {
        let windows = zip(layout.windows(rank), split(q, queries)).map {
            WindowForward(problem, rows: $0, q: $1, threads: threads, configuration: configuration)
        }
        let ranks = layout.ranks, held = layout.keys(rank)
        let (relay, next, previous) = (layout.relaysKeys, (rank + 1) % ranks, (rank + ranks - 1) % ranks)
        let needed = (0..<ranks).filter { layout.forwardNeeds(rank, keysOf: $0) }
        // The other ranks' keys this rank receives, in key order: those it needs, or, passing
        // keys on, every other rank's, for the ranks after it.
        let incoming = relay ? (0..<ranks).filter { $0 != rank && !layout.keys($0).isEmpty } : needed.filter { $0 != rank }
        let keyCapacity = incoming.map { layout.keyFloats(layout.keys($0)) }.max() ?? 0
        let valueCapacity = incoming.map { layout.valueFloats(layout.keys($0)) }.max() ?? 0
        let buffers = (0..<min(2, incoming.count)).map { _ in (k: FloatBuffer(keyCapacity), v: FloatBuffer(valueCapacity)) }
        // Each rank's keys and values travel under tags of their own, as messages from one
        // neighbour carry every rank's in turn.
        func tags(_ owner: Int) -> (k: Int, v: Int) { (2 * owner, 2 * owner + 1) }
        try k.withUnsafeBufferPointer { (k) throws(MPIError) in
            try v.withUnsafeBufferPointer { (v) throws(MPIError) in
                var sends: [Message] = []
                let targets = relay ? (held.isEmpty ? [] : [next])
                                    : (0..<ranks).filter { $0 != rank && layout.forwardNeeds($0, keysOf: rank) }
                for target in targets {
                    sends.append(try .send(k.baseAddress!, count: k.count, to: target, tag: tags(rank).k, on: communicator))
                    sends.append(try .send(v.baseAddress!, count: v.count, to: target, tag: tags(rank).v, on: communicator))
                }
                var receives: [(k: Message, v: Message)] = []
                // The sends passing each buffer's keys on, which must finish before it is reused.
                var passing: [[Message]] = buffers.map { _ in [] }
                func receive(_ index: Int) throws(MPIError) {
                    guard index < incoming.count else { return }
                    let (owner, slot) = (incoming[index], index % buffers.count)
                    for message in passing[slot] { try message.wait() }
                    let keys = layout.keys(owner), source = relay ? previous : owner
                    receives.append((try .receive(into: buffers[slot].k.base, count: layout.keyFloats(keys), from: source,
                                                  tag: tags(owner).k, on: communicator),
                                     try .receive(into: buffers[slot].v.base, count: layout.valueFloats(keys), from: source,
                                                  tag: tags(owner).v, on: communicator)))
                }
                for index in 0..<buffers.count { try receive(index) }
                /// Visits keys `keys` held in k and v while the transfers in flight move on.
                func visit(_ keys: Range<Int>, k: UnsafePointer<Float>, v: UnsafePointer<Float>) throws(MPIError) {
                    try Message.progressing(sends + receives.flatMap { [$0.k, $0.v] }) {
                        for window in windows { window.visit(keys: keys, k: k, v: v) }
                    }
                }
                var index = 0
                for owner in (incoming + (needed.contains(rank) ? [rank] : [])).sorted() {
                    if owner == rank {
                        try visit(held, k: k.baseAddress!, v: v.baseAddress!)
                        continue
                    }
                    try receives[index].k.wait()
                    try receives[index].v.wait()
                    let slot = index % buffers.count, keys = layout.keys(owner)
                    if relay && next != owner {
                        let (kCount, vCount) = (layout.keyFloats(keys), layout.valueFloats(keys))
                        passing[slot] = [try .send(buffers[slot].k.base, count: kCount, to: next, tag: tags(owner).k, on: communicator),
                                         try .send(buffers[slot].v.base, count: vCount, to: next, tag: tags(owner).v, on: communicator)]
                        sends += passing[slot]
                    }
                    if needed.contains(owner) { try visit(keys, k: buffers[slot].k.base, v: buffers[slot].v.base) }
                    try receive(index + buffers.count)
                    index += 1
                }
                for send in sends { try send.wait() }
                withExtendedLifetime(buffers) {}
            }
        }
        let results = windows.map { $0.finish() }
        let (o, lse, residual) = (results.flatMap(\.o), results.flatMap(\.lse), results.flatMap(\.lseResidual))
        return (o, lse, residual, SavedForward(q: q, k: k, v: v, o: o, lse: lse, lseResidual: residual))
    }

    public func restore(q: [Float], k: [Float], v: [Float], o: [Float], lse: [Float], lseResidual: [Float]?) -> SavedForward {
        SavedForward(q: q, k: k, v: v, o: o, lse: lse, lseResidual: lseResidual)
    }

    public func backward(_ saved: SavedForward, dO: [Float]) throws(MPIError) -> (dQ: [Float], dK: [Float], dV: [Float]) {
        let (q, o, lse, dO) = (split(saved.q, queries), split(saved.o, outputs), split(saved.lse, self.lse), split(dO, outputs))
        let residual = split(saved.lseResidual, self.lse)
        let windows = layout.windows(rank).indices.map { w in
            WindowBackward(problem, rows: layout.windows(rank)[w], q: q[w], o: o[w], lse: lse[w], lseResidual: residual[w], dO: dO[w],
                           threads: threads, configuration: configuration)
        }
        let pipeline = RingBackward(layout: layout, communicator: communicator, windows: windows, k: saved.k, v: saved.v,
                                    gradientLayout: gradientLayout)
        let (dK, dV) = try pipeline.run()
        return (windows.flatMap { $0.finish() }, dK, dV)
    }
}

/// Floats owned by a transfer: a buffer MPI reads or writes while the rank computes.
final class FloatBuffer {
    let base: UnsafeMutablePointer<Float>
    let count: Int

    init(_ count: Int) {
        self.count = count
        base = .allocate(capacity: max(1, count))
    }

    convenience init(_ values: [Float]) {
        self.init(values.count)
        base.update(from: values, count: values.count)
    }

    deinit { base.deallocate() }
}
