import FlashAttention
import TensorSlices

/// `--partition ring` (context parallelism): rank r holds a window of the query rows and a run of
/// whole key blocks of every head (`RingLayout`), so no rank ever holds the full sequence, and
/// keys and values travel between ranks while the rank computes.
///
/// The results are bitwise those of one process (`WindowAttention`), for any rank count: each
/// rank visits the key blocks in key order, so it takes each rank's keys straight from that rank
/// (ranks of earlier keys first) rather than from its ring neighbour, and the per-head dK/dV sums
/// of each key block pass from the ranks of earlier rows to those of later ones, a pipeline in
/// row order, the last rank adding the heads of each group and sending the block's dK and dV to
/// its owner (`RingBackward`). Receives are posted ahead (two sets of key/value buffers in flight
/// in the forward, one item ahead in the backward), every send starts as soon as its data exists,
/// and the forward calls into MPI every few key blocks so that transfers move on while it
/// computes; no rank is sent keys that its rows never see.
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
        let held = layout.keys(rank)
        let sources = (0..<layout.ranks).filter { layout.forwardNeeds(rank, keysOf: $0) }
        let remote = sources.filter { $0 != rank }
        let keyCapacity = remote.map { layout.keyFloats(layout.keys($0)) }.max() ?? 0
        let valueCapacity = remote.map { layout.valueFloats(layout.keys($0)) }.max() ?? 0
        let buffers = (0..<min(2, remote.count)).map { _ in (k: FloatBuffer(keyCapacity), v: FloatBuffer(valueCapacity)) }
        try k.withUnsafeBufferPointer { (k) throws(MPIError) in
            try v.withUnsafeBufferPointer { (v) throws(MPIError) in
                var sends: [Message] = []
                for target in 0..<layout.ranks where target != rank && layout.forwardNeeds(target, keysOf: rank) {
                    sends.append(try .send(k.baseAddress!, count: k.count, to: target, tag: 0, on: communicator))
                    sends.append(try .send(v.baseAddress!, count: v.count, to: target, tag: 1, on: communicator))
                }
                var receives: [(k: Message, v: Message)] = []
                func receive(_ index: Int) throws(MPIError) {
                    guard index < remote.count else { return }
                    let (source, slot) = (remote[index], buffers[index % buffers.count])
                    let keys = layout.keys(source)
                    receives.append((try .receive(into: slot.k.base, count: layout.keyFloats(keys), from: source, tag: 0, on: communicator),
                                     try .receive(into: slot.v.base, count: layout.valueFloats(keys), from: source, tag: 1, on: communicator)))
                }
                for index in 0..<buffers.count { try receive(index) }
                /// Visits keys `keys` held in k and v a few blocks at a time, letting the transfers
                /// in flight move on between the pieces.
                func visit(_ keys: Range<Int>, k: UnsafePointer<Float>, v: UnsafePointer<Float>) throws(MPIError) {
                    for piece in layout.pieces(of: keys) {
                        for window in windows { window.visit(keys: keys, k: k, v: v, only: piece) }
                        for message in sends + receives.flatMap({ [$0.k, $0.v] }) { try message.isComplete() }
                    }
                }
                var next = 0
                for source in sources {
                    if source == rank {
                        try visit(held, k: k.baseAddress!, v: v.baseAddress!)
                        continue
                    }
                    try receives[next].k.wait()
                    try receives[next].v.wait()
                    let slot = buffers[next % buffers.count]
                    try visit(layout.keys(source), k: slot.k.base, v: slot.v.base)
                    try receive(next + buffers.count)
                    next += 1
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
