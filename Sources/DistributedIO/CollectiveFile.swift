import CMPI
import Distributed
import Foundation
import TensorIO
import TensorSlices

/// One file that all ranks write at once with MPI-IO: each rank's part goes straight to its own
/// offsets through a file view, so no rank ever handles another's data.
final class CollectiveFile {
    private let communicator: Communicator
    private var handle: MPI_File?

    /// Opens (creating if needed) `path` on every rank; collective.
    init(path: String, communicator: Communicator) throws(MPIError) {
        self.communicator = communicator
        var handle = cmpi_file_null()
        let code = FilePath.withSystemPath(path) { MPI_File_open(communicator.comm, $0, cmpi_mode_create_wronly(), cmpi_info_null(), &handle) }
        try Communicator.check(code, "MPI_File_open(\(FilePath.display(path)))")
        self.handle = handle
    }

    /// Writes `bytes`, this rank's `slice` of a C-order array of `elementBytes`-byte elements
    /// that starts `offset` bytes into the file; collective, every rank passing its own slice of
    /// the same array.
    func write(_ bytes: Data, elementBytes: Int, as slice: AxisSlice, at offset: Int) throws(MPIError) {
        precondition(bytes.count == slice.elementCount * elementBytes, "bytes do not fill the slice")
        var element = cmpi_datatype_null()
        try Communicator.check(MPI_Type_contiguous(Int32(elementBytes), cmpi_byte(), &element), "MPI_Type_contiguous")
        try Communicator.check(MPI_Type_commit(&element), "MPI_Type_commit")
        defer { MPI_Type_free(&element) }
        var view = element
        if slice.elementCount > 0 {
            // MPI's subarray type needs at least one element in every dimension; an empty part
            // keeps the plain element view and writes nothing.
            var subarray = cmpi_datatype_null()
            let code = MPI_Type_create_subarray(Int32(slice.shape.count), try slice.shape.map { v throws(MPIError) in try Int32(count: v) },
                                                slice.localShape.map { Int32($0) },
                                                slice.shape.indices.map { $0 == slice.axis ? Int32(slice.range.lowerBound) : 0 },
                                                MPI_ORDER_C, element, &subarray)
            try Communicator.check(code, "MPI_Type_create_subarray")
            try Communicator.check(MPI_Type_commit(&subarray), "MPI_Type_commit")
            view = subarray
        }
        defer { if slice.elementCount > 0 { MPI_Type_free(&view) } }
        try Communicator.check(MPI_File_set_view(handle, MPI_Offset(offset), element, view, "native", cmpi_info_null()),
                               "MPI_File_set_view")
        let count = try Int32(count: slice.elementCount)
        var status = MPI_Status()
        let code = bytes.withUnsafeBytes {
            MPI_File_write_all(handle, $0.baseAddress, count, element, &status)
        }
        try Communicator.check(code, "MPI_File_write_all")
        // MPI-IO may report success for a write the file system cut short: the count tells.
        var written: Int32 = 0
        try Communicator.check(MPI_Get_count(&status, element, &written), "MPI_Get_count")
        guard written == count else {
            throw MPIError(description: "MPI_File_write_all wrote \(written) of \(count) elements")
        }
    }

    /// Syncs this rank's writes to the device and closes the file on every rank; collective.
    /// Later calls do nothing.
    func close() throws(MPIError) {
        guard handle != nil else { return }
        let synced = MPI_File_sync(handle)
        try Communicator.check(MPI_File_close(&handle), "MPI_File_close")
        try Communicator.check(synced, "MPI_File_sync")
        handle = nil
    }
}
