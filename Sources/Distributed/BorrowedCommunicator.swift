import CMPI

extension Communicator {
    /// The ranks of `comm`, a communicator of a process that initialised MPI itself (mpi4py, a C
    /// program): a duplicate of it, so this library's messages never match the caller's, that
    /// returns errors as Swift errors whatever the caller's error handler. `release()` frees it;
    /// never `finalize()` it, MPI belongs to the caller.
    public static func duplicating(_ comm: MPI_Comm) throws(MPIError) -> Communicator {
        var duplicate: MPI_Comm?
        try check(MPI_Comm_dup(comm, &duplicate), "MPI_Comm_dup")
        try check(MPI_Comm_set_errhandler(duplicate, cmpi_errors_return()), "MPI_Comm_set_errhandler")
        var rank: Int32 = 0, size: Int32 = 0
        try check(MPI_Comm_rank(duplicate, &rank), "MPI_Comm_rank")
        try check(MPI_Comm_size(duplicate, &size), "MPI_Comm_size")
        return Communicator(rank: Int(rank), size: Int(size), comm: duplicate)
    }

    /// Frees a communicator made by `duplicating`; a collective call, on every rank.
    public func release() {
        var comm = self.comm
        if comm != nil { MPI_Comm_free(&comm) }
    }
}
