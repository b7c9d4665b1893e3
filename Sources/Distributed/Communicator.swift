import CMPI
import Foundation
import Synchronization

/// An MPI call that failed, with MPI's own description of the error.
public struct MPIError: Error, CustomStringConvertible {
    public let description: String

    package init(description: String) { self.description = description }
}

/// The ranks of one run.
///
/// Started by mpirun (which sets OMPI_COMM_WORLD_SIZE), the process initialises MPI with errors
/// returned rather than aborting, so they become Swift errors; started alone it is a single rank
/// and never touches MPI, so threaded mode needs no MPI runtime at all.
///
/// `@unchecked Sendable`: every stored property is immutable but the MPI handle (an opaque pointer
/// MPI owns), and the mutable state (whether MPI was finalised, the traffic counts) sits behind
/// locks. MPI itself is initialised `MPI_THREAD_FUNNELED`: only the thread that started it calls it.
public final class Communicator: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    package let comm: MPI_Comm?
    private let finalized = Mutex(false)
    /// Shared by the communicators split from one another: one process's traffic.
    private let counter: TrafficCounter
    /// What this rank has sent so far, for `--stats`.
    public var traffic: Traffic { counter.traffic.withLock { $0 } }

    /// Adds to this rank's traffic, under the counter's lock.
    func recordTraffic(_ change: (inout Traffic) -> Void) { counter.traffic.withLock { change(&$0) } }

    init(rank: Int, size: Int, comm: MPI_Comm?, counter: TrafficCounter = TrafficCounter()) {
        (self.rank, self.size, self.comm, self.counter) = (rank, size, comm, counter)
    }

    /// The ranks that pass the same `color`, ordered by `key` (MPI_Comm_split); collective.
    func split(color: Int, key: Int) throws(MPIError) -> Communicator {
        guard let comm else { return Communicator(rank: 0, size: 1, comm: nil, counter: counter) }
        var part = cmpi_comm_null()
        try Communicator.check(MPI_Comm_split(comm, Int32(color), Int32(key), &part), "MPI_Comm_split")
        try Communicator.check(MPI_Comm_set_errhandler(part, cmpi_errors_return()), "MPI_Comm_set_errhandler")
        var rank: Int32 = 0, size: Int32 = 0
        try Communicator.check(MPI_Comm_rank(part, &rank), "MPI_Comm_rank")
        try Communicator.check(MPI_Comm_size(part, &size), "MPI_Comm_size")
        return Communicator(rank: Int(rank), size: Int(size), comm: part, counter: counter)
    }

    /// The world communicator, initialising MPI when launched under mpirun.
    public static func world(environment: [String: String]) throws(MPIError) -> Communicator {
        guard environment["OMPI_COMM_WORLD_SIZE"] != nil || environment["PMIX_RANK"] != nil else {
            return Communicator(rank: 0, size: 1, comm: nil)
        }
        // Over one TCP connection per pair of ranks, the handshake of a large message one way
        // (OpenMPI's rendezvous) queues behind the data going the other way, so two ranks that
        // exchange at once take turns: the sequence partition's 16 MiB per rank at 100 Mbit/s took
        // 1.80–1.87 s instead of 1.41–1.47 s. Two connections per pair let the handshake pass. Set
        // before MPI_Init, never overriding a user's choice. (OpenMPI's TCP progress thread stays
        // off, its default: with two connections OpenMPI 4.1 then sometimes hung while the ranks
        // connected, 1 start in 8; the ring keeps its transfers moving itself, `Message.progressing`.)
        setenv("OMPI_MCA_btl_tcp_links", "2", 0)
        var provided: Int32 = 0
        try check(MPI_Init_thread(nil, nil, cmpi_thread_funneled(), &provided), "MPI_Init_thread")
        let world = cmpi_comm_world()
        try check(MPI_Comm_set_errhandler(world, cmpi_errors_return()), "MPI_Comm_set_errhandler")
        var rank: Int32 = 0, size: Int32 = 0
        try check(MPI_Comm_rank(world, &rank), "MPI_Comm_rank")
        try check(MPI_Comm_size(world, &size), "MPI_Comm_size")
        return Communicator(rank: Int(rank), size: Int(size), comm: world)
    }

    /// Whether other ranks exist to talk to (MPI is initialised), even if there is just one.
    public var isDistributed: Bool { comm != nil }

    /// Ends MPI once; later calls do nothing.
    public func finalize() {
        guard comm != nil, finalized.withLock({ done in defer { done = true }; return !done }) else { return }
        MPI_Finalize()
    }

    /// Ends every rank of the job at once: for a failure the other ranks cannot know about, which
    /// would leave them waiting in a collective call forever.
    public func abort(exitCode: Int32) -> Never {
        if let comm { MPI_Abort(comm, exitCode) }
        exit(exitCode)
    }

    package static func check(_ code: Int32, _ call: String) throws(MPIError) {
        guard code != cmpi_success() else { return }
        var text = [CChar](repeating: 0, count: Int(cmpi_max_error_string()) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &text, &length)
        let message = String(decoding: text.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        throw MPIError(description: "\(call) failed: \(message)")
    }
}

extension Int32 {
    /// A count for MPI's int parameters, or an error where it does not fit.
    package init(count: Int) throws(MPIError) {
        guard let value = Int32(exactly: count) else {
            throw MPIError(description: "\(count) elements are more than one MPI call can move (at most \(Int32.max))")
        }
        self = value
    }
}

final class TrafficCounter: Sendable {
    let traffic = Mutex(Traffic())
}

/// Bytes this rank sent to other ranks and time spent waiting in transfers.
public struct Traffic: Sendable {
    /// Bytes sent to other ranks (not to itself) by all-to-alls and point-to-point sends.
    public var bytesSent: Int64 = 0
    /// Bytes this rank put into all-to-alls, its own share included: (P − 1)/P of it should leave.
    public var allToAllBytes: Int64 = 0
    public var seconds: Double = 0
    /// CPU time this process spent in those waits (MPI polls while it waits).
    public var cpuSeconds: Double = 0
}

extension Traffic {
    /// CPU time of the whole process so far, all threads.
    public static func processCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}

extension Communicator {
    /// Runs `body`, a wait for transfers, counting its wall and CPU time as time in transfers.
    func waiting<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        let start = DispatchTime.now().uptimeNanoseconds, cpu = Traffic.processCPUSeconds()
        defer {
            recordTraffic {
                $0.seconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                $0.cpuSeconds += Traffic.processCPUSeconds() - cpu
            }
        }
        return try body()
    }
}
