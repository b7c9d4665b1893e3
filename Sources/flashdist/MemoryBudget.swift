import Foundation
import TensorIO

/// The memory a run will need, worked out from the shapes alone before anything is allocated,
/// against the machine's: a run that cannot fit stops with one error line naming its inputs,
/// instead of an allocation failure (or a crash from overflowed sizes) after minutes of work.
/// Sizes are Doubles, so no product of shapes from a header can overflow.
struct MemoryBudget {
    let threads: Int
    let ranks: Int
    /// Ranks on this machine (mpirun's local size): they share its memory.
    let ranksHere: Int

    init(threads: Int, ranks: Int) {
        self.threads = threads
        self.ranks = ranks
        ranksHere = ThreadOptions.ranksHere
    }

    /// Per-thread scratch: the kernels' tiles (64 × 64 scores, rows of up to 256 dims) with room to spare.
    static let scratchPerThread = 4.0 * 1_048_576

    /// Throws, naming `label` (the input or the options the shapes come from), when the run
    /// cannot fit in this machine's memory.
    func check(batch b: Double, queries: Double, keys: Double, heads: Int, kvHeads: Int, headDim: Int, backward: Bool,
               sinks: Bool = false, label: String) throws {
        let h = Double(heads)
        let queryFloats = queries * h * Double(headDim), keyFloats = keys * Double(kvHeads) * Double(headDim)
        let lseFloats = queries * h
        // q, k, v, o, lse and its residual; with the backward also dO, dq, dk, dv and D; plus one
        // output tensor converted for writing while it is in flight.
        var floats = 2 * queryFloats + 2 * keyFloats + 2 * lseFloats + max(queryFloats, keyFloats)
        if backward { floats += 2 * queryFloats + 2 * keyFloats + lseFloats }
        // A rank holds its share, twice while re-sharding; every rank on this machine holds one.
        // dsinks adds two float64 arrays of the whole lse's size on every rank (D and the row terms).
        let sinkBytes = sinks && backward ? 16 * lseFloats : 0
        let tensors = (4 * floats * (ranks > 1 ? 2 / Double(ranks) : 1) + sinkBytes) * Double(ranksHere)
        // Offsets, tiles and per-(batch, head) bookkeeping on every rank, whatever its share.
        let bookkeeping = (32 * b + 64 * b * h + 8 * (queries + keys) / 64) * Double(ranksHere)
        let scratch = Self.scratchPerThread * Double(threads) * Double(ranksHere)
        let needed = tensors + bookkeeping + scratch
        let available = Self.machineBytes()
        guard needed <= available else {
            throw TensorIOError(label, "this run needs \(Self.text(needed)) of memory (tensors \(Self.text(tensors)), "
                                + "scratch \(Self.text(scratch)), bookkeeping \(Self.text(bookkeeping))), more than the "
                                + "\(Self.text(available)) of this machine")
        }
    }

    /// The physical memory, or the cgroup's limit when it is lower (a container).
    static func machineBytes() -> Double {
        let physical = Double(ProcessInfo.processInfo.physicalMemory)
        let limit = (try? String(contentsOfFile: "/sys/fs/cgroup/memory.max", encoding: .utf8))
            .flatMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        return min(physical, limit ?? physical)
    }

    /// Bytes as "512.0 MiB", "8.0 TiB", … up to exbibytes and beyond.
    static func text(_ bytes: Double) -> String {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var value = bytes, unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(Int(value)) bytes" : "\(String(format: "%.1f", value)) \(units[unit])"
    }
}
