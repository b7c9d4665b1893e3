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
    /// Ulysses all-to-all inside groups of `--ulysses` ranks, the ring across the groups (USP).
    case hybrid

    /// The partition asked for, or unasked the one that keeps every rank busy, with the reason:
    /// heads while every rank can have whole GQA groups (ranks ≤ kv heads), which moves no data;
    /// beyond that the ring, which splits the sequence itself and needs no head to spare.
    static func resolved(_ requested: Partition?, kvHeads: Int, ranks: Int) -> (partition: Partition, reason: String) {
        if let requested { return (requested, "asked for") }
        return ranks <= kvHeads ? (.heads, "default: \(ranks) ranks ≤ \(kvHeads) kv heads, whole GQA groups per rank")
                                : (.ring, "default: \(ranks) ranks > \(kvHeads) kv heads, rows and keys split")
    }

    /// This rank's side of `problem` spread over `communicator`'s ranks this way; a partition's
    /// refusal worded in the options' terms.
    func attention(_ problem: AttentionProblem, on communicator: Communicator, threads: Int,
                   ulysses: Int?) throws -> any AttentionPartition {
        do {
            switch self {
            case .heads: return try HeadParallelAttention(problem: problem, communicator: communicator, threads: threads)
            case .sequence: return try SequenceParallelAttention(problem: problem, communicator: communicator, threads: threads)
            case .ring: return RingAttention(problem: problem, communicator: communicator, threads: threads)
            case .hybrid:
                return try HybridAttention(problem: problem, communicator: communicator, threads: threads,
                                           ulysses: try Self.ulysses(ulysses, ranks: communicator.size, kvHeads: problem.kvHeads))
            }
        } catch let refusal as PartitionError {
            switch refusal {
            case .moreRanksThanHeads(let ranks, let heads):
                throw ValidationError("--partition heads: \(ranks) ranks but only \(heads) query heads; use --partition sequence, or at most \(heads) ranks")
            case .groupSizeNotDividingRanks(let groupSize, let ranks):
                throw ValidationError("--ulysses \(groupSize) does not divide the \(ranks) ranks")
            }
        }
    }
}

extension Partition {
    /// `--ulysses` as given, or unasked the largest group size that divides the ranks and keeps
    /// whole GQA groups per member.
    static func ulysses(_ requested: Int?, ranks: Int, kvHeads: Int) throws -> Int {
        if let requested { return requested }
        return (1...max(1, min(ranks, kvHeads))).last { ranks % $0 == 0 }!
    }
}

/// `--partition` and `--ulysses`, of every command that runs under mpirun.
struct PartitionOptions: ParsableArguments {
    @Option(help: "Under mpirun: split the work by query heads; by sequence rows with all-to-all re-sharding (Ulysses); or by rows and key blocks with keys, values and dK/dV sums passed between ranks (ring, context parallelism: any rank count, bitwise as one process). Default: heads while ranks ≤ kv heads, else ring.")
    var partition: Partition?

    @Option(help: "With --partition hybrid: ranks per all-to-all group (a divisor of the rank count, at most the kv heads; ranks of a group should share a node). Default: the largest such.")
    var ulysses: Int?

    func validate() throws {
        if ulysses != nil && partition != .hybrid { throw ValidationError("--ulysses goes with --partition hybrid") }
    }
}

/// `--stats` of the commands that read files (bench reports its own figures).
struct StatsOption: ParsableArguments {
    @Flag(help: "After the run, print the partition chosen and why, and each rank's phase times, busy times and bytes sent to other ranks per phase on stderr (from rank 0).")
    var stats = false
}
