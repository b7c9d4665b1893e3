import CMPI

/// An MPI call that failed, with MPI's own description of the error.
public struct MPIError: Error, CustomStringConvertible {
    public let description: String
}

/// The ranks of one run.
///
/// Started by mpirun (which sets OMPI_COMM_WORLD_SIZE), the process initialises MPI with errors
/// returned rather than aborting, so they become Swift errors; started alone it is a single rank
/// and never touches MPI, so threaded mode needs no MPI runtime at all.
public final class Communicator: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    let comm: MPI_Comm?
    private var finalized = false

    private init(rank: Int, size: Int, comm: MPI_Comm?) {
        (self.rank, self.size, self.comm) = (rank, size, comm)
    }

    /// The world communicator, initialising MPI when launched under mpirun.
    public static func world(environment: [String: String]) throws(MPIError) -> Communicator {
        guard environment["OMPI_COMM_WORLD_SIZE"] != nil || environment["PMIX_RANK"] != nil else {
            return Communicator(rank: 0, size: 1, comm: nil)
        }
        var provided: Int32 = 0
        try check(MPI_Init_thread(nil, nil, cmpi_thread_funneled(), &provided), "MPI_Init_thread")
        let world = cmpi_comm_world()
        try check(MPI_Comm_set_errhandler(world, cmpi_errors_return()), "MPI_Comm_set_errhandler")
        var rank: Int32 = 0, size: Int32 = 0
        try check(MPI_Comm_rank(world, &rank), "MPI_Comm_rank")
        try check(MPI_Comm_size(world, &size), "MPI_Comm_size")
        return Communicator(rank: Int(rank), size: Int(size), comm: world)
    }

    /// Ends MPI once; later calls do nothing.
    public func finalize() {
        guard comm != nil, !finalized else { return }
        finalized = true
        MPI_Finalize()
    }

    static func check(_ code: Int32, _ call: String) throws(MPIError) {
        guard code != cmpi_success() else { return }
        var text = [CChar](repeating: 0, count: Int(cmpi_max_error_string()) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &text, &length)
        throw MPIError(description: "\(call) failed: \(String(cString: text))")
    }
}
