import CMPI
import Foundation

/// Nonblocking sends and receives of floats, posted in any order and completed together by
/// `waitAll`, so that ranks exchanging with each other never wait on one another half-way. Each
/// transfer has its own buffer, owned here until the transfers are complete.
final class Transfers {
    private let communicator: Communicator
    private var requests: [MPI_Request?] = []
    private var buffers: [UnsafeMutableBufferPointer<Float>] = []

    init(_ communicator: Communicator) { self.communicator = communicator }

    deinit { for buffer in buffers { buffer.deallocate() } }

    /// Sends a copy of `values`, so the caller may drop or change them at once.
    func send(_ values: [Float], to rank: Int, tag: Int) throws(MPIError) {
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: values.count)
        _ = buffer.initialize(from: values)
        buffers.append(buffer)
        var request = cmpi_request_null()
        let code = MPI_Isend(buffer.baseAddress, try Int32(count: values.count), cmpi_float(), Int32(rank), Int32(tag),
                             communicator.comm, &request)
        try Communicator.check(code, "MPI_Isend")
        requests.append(request)
        communicator.recordTraffic { $0.bytesSent += Int64(values.count * MemoryLayout<Float>.size) }
    }

    /// Posts a receive of `count` floats; its data is `received(_:)` of the returned index once
    /// `waitAll` has returned.
    func receive(count: Int, from rank: Int, tag: Int) throws(MPIError) -> Int {
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: count)
        buffers.append(buffer)
        var request = cmpi_request_null()
        let code = MPI_Irecv(buffer.baseAddress, try Int32(count: count), cmpi_float(), Int32(rank), Int32(tag),
                             communicator.comm, &request)
        try Communicator.check(code, "MPI_Irecv")
        requests.append(request)
        return buffers.count - 1
    }

    func waitAll() throws(MPIError) {
        guard !requests.isEmpty else { return }
        try communicator.waiting { () throws(MPIError) in
            try Communicator.check(MPI_Waitall(Int32(requests.count), &requests, cmpi_statuses_ignore()), "MPI_Waitall")
        }
    }

    func received(_ index: Int) -> UnsafeBufferPointer<Float> { UnsafeBufferPointer(buffers[index]) }
}
