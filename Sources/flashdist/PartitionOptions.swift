import ArgumentParser
import Distributed
import FlashAttention

/// How the ranks of an mpirun job share a problem.
enum Partition: String, ExpressibleByArgument, CaseIterable {
    /// Each rank a contiguous range of query heads over the full sequence.
    case heads
    /// Each rank a shard of the sequence rows of every head, re-sharded by all-to-all (Ulysses).
    case sequence
    /// Each rank a window of the query rows and a run of key blocks; keys, values and dK/dV sums
    /// travel between ranks (context parallelism), bitwise as one process.
    case ring

    /// The partition asked for; unasked, heads, unless there are more ranks than heads, which
    /// only the sequence partition can keep busy (asking for heads then is an error).
    static func resolved(_ requested: Partition?, heads: Int, ranks: Int) -> Partition {
        requested ?? (ranks > heads ? .sequence : .heads)
    }

    /// This rank's side of `problem` spread over `communicator`'s ranks this way.
    func attention(_ problem: AttentionProblem, on communicator: Communicator, threads: Int) throws -> any AttentionPartition {
        switch self {
        case .heads: try HeadParallelAttention(problem: problem, communicator: communicator, threads: threads)
        case .sequence: try SequenceParallelAttention(problem: problem, communicator: communicator, threads: threads)
        case .ring: RingAttention(problem: problem, communicator: communicator, threads: threads)
        }
    }
}

struct PartitionOptions: ParsableArguments {
    @Option(help: "Under mpirun: split the work by query heads, or by sequence rows with all-to-all re-sharding (for sequences one node cannot hold, or more ranks than heads). Default: heads, or sequence with more ranks than heads.")
    var partition: Partition?

    @Flag(help: "After the run, print each rank's phase times and bytes sent to other ranks on stderr (from rank 0).")
    var stats = false
}
