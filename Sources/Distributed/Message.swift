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

    /// Whether the transfer is complete, letting MPI move it along without waiting (a rank
    /// between two pieces of compute: without a progress thread, MPI moves data only inside its
    /// calls).
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
