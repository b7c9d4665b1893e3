import CMPI
import Foundation

/// One nonblocking send or receive of floats between the caller's own buffers, which must stay
/// put until `wait` returns: what the ring partition overlaps with its compute.
final class Message {
    private let communicator: Communicator
    private var request: MPI_Request? = cmpi_request_null()
    private var done = false

    /// Starts sending `count` floats from `values` to `rank`; counted in this rank's traffic.
    static func send(_ values: UnsafePointer<Float>, count: Int, to rank: Int, tag: Int,
                     on communicator: Communicator) throws(MPIError) -> Message {
        let message = Message(communicator)
        try Communicator.check(MPI_Isend(values, try Int32(count: count), cmpi_float(), Int32(rank), Int32(tag), communicator.comm,
                                         &message.request), "MPI_Isend")
        communicator.recordTraffic { $0.bytesSent += Int64(count * MemoryLayout<Float>.size) }
        return message
    }

    /// Starts receiving `count` floats from `rank` into `values`.
    static func receive(into values: UnsafeMutablePointer<Float>, count: Int, from rank: Int, tag: Int,
                        on communicator: Communicator) throws(MPIError) -> Message {
        let message = Message(communicator)
        try Communicator.check(MPI_Irecv(values, try Int32(count: count), cmpi_float(), Int32(rank), Int32(tag), communicator.comm,
                                         &message.request), "MPI_Irecv")
        return message
    }

    private init(_ communicator: Communicator) { self.communicator = communicator }

    /// Whether the transfer is complete, letting MPI move it along without waiting.
    @discardableResult
    func isComplete() throws(MPIError) -> Bool {
        guard !done else { return true }
        var flag: Int32 = 0
        try Communicator.check(MPI_Test(&request, &flag, cmpi_status_ignore()), "MPI_Test")
        done = flag != 0
        return done
    }

    /// Returns once the transfer is complete; later calls return at once.
    func wait() throws(MPIError) {
        guard !done else { return }
        try communicator.waiting { () throws(MPIError) in try Communicator.check(MPI_Wait(&request, cmpi_status_ignore()), "MPI_Wait") }
        done = true
    }
}

extension Message {
    /// How often the MPI thread looks at transfers while a worker computes: at 1 Gbit/s, 125 KB
    /// pass in that time, within what a TCP socket buffers, so the link does not run dry; each
    /// look wakes a thread that takes a core from the computing ones for a moment.
    private static let pollInterval = DispatchTimeInterval.milliseconds(1)

    /// Runs `work` on a worker thread while this thread, MPI's, keeps `transfers` moving until
    /// `work` is done. OpenMPI's TCP transport moves a large message only inside MPI calls (its
    /// own progress thread is off: with two connections per rank pair it sometimes hung at start,
    /// see `Communicator.world`), so a rank computing on this thread would hold every transfer —
    /// the rendezvous handshake of a message to it included — until its next MPI call.
    static func progressing(_ transfers: [Message], during work: () -> Void) throws(MPIError) {
        var moving = try pending(transfers)
        guard !moving.isEmpty else { return work() }
        var failure: MPIError?
        withoutActuallyEscaping(work) { work in
            // A thread of its own, joined before returning: `work` is released before the
            // non-escaping closure it wraps returns (a Dispatch block could outlive its signal).
            let job = Unmanaged.passRetained(Job(work))
            defer { job.release() }
            var thread = pthread_t()
            guard pthread_create(&thread, nil, { job in
                let job = Unmanaged<Job>.fromOpaque(job!).takeUnretainedValue()
                job.work()
                job.finished.signal()
                return nil
            }, job.toOpaque()) == 0 else { return work() }
            let finished = job.takeUnretainedValue().finished
            var done = false
            do throws(MPIError) {
                while !done && !moving.isEmpty {
                    done = finished.wait(timeout: .now() + pollInterval) == .success
                    moving = try pending(moving)
                }
            } catch {
                failure = error
            }
            pthread_join(thread, nil)
        }
        if let failure { throw failure }
    }

    /// A computation handed to a thread, and its signal that it is done.
    private final class Job {
        let work: () -> Void
        let finished = DispatchSemaphore(value: 0)

        init(_ work: @escaping () -> Void) { self.work = work }
    }

    /// Those of `transfers` not yet complete, each moved along.
    private static func pending(_ transfers: [Message]) throws(MPIError) -> [Message] {
        var pending: [Message] = []
        for message in transfers where try !message.isComplete() { pending.append(message) }
        return pending
    }
}
