import CMPI
import Foundation

/// Element types the collectives move, with their MPI datatypes.
public protocol MPIScalar { static var datatype: MPI_Datatype { get } }
extension Int64: MPIScalar { public static var datatype: MPI_Datatype { cmpi_int64() } }
extension Double: MPIScalar { public static var datatype: MPI_Datatype { cmpi_double() } }
extension UInt8: MPIScalar { public static var datatype: MPI_Datatype { cmpi_byte() } }

/// A failure that every rank has agreed on (see `Communicator.agree`), described as the lowest
/// failing rank saw it. Every rank throws it, so all leave together and can still finalise MPI.
public struct CollectiveFailure: Error, CustomStringConvertible {
    public let description: String
}

extension Communicator {
    /// Runs `body` on every rank and makes any rank's failure everyone's: if some rank threw,
    /// every rank throws a `CollectiveFailure` carrying the error of the lowest failing rank.
    /// Called around each step that can fail on some ranks only (a file, an option checked
    /// against the rank count), so no rank goes on to a collective call the others never reach.
    public func agree<T>(_ body: () throws -> T) throws -> T {
        let result = Result { try body() }
        guard isDistributed else { return try result.get() }
        let failed: Bool = if case .failure = result { true } else { false }
        let lowest = try allreduceMinimum(Int64(failed ? rank : size))
        guard lowest < size else { return try result.get() }
        var message = [UInt8]()
        if case .failure(let error) = result, lowest == rank { message = Array(String(describing: error).utf8) }
        try broadcast(&message, from: Int(lowest))
        throw CollectiveFailure(description: String(decoding: message, as: UTF8.self))
    }

    /// `values` from `root` on every rank; other ranks' arrays are resized to match.
    public func broadcast<T: MPIScalar>(_ values: inout [T], from root: Int) throws(MPIError) {
        guard let comm else { return }
        var count = Int64(values.count)
        try Communicator.check(MPI_Bcast(&count, 1, Int64.datatype, Int32(root), comm), "MPI_Bcast")
        if rank != root { values = [T](unsafeUninitializedCapacity: Int(count)) { _, initialized in initialized = Int(count) } }
        guard count > 0 else { return }
        let code = values.withUnsafeMutableBufferPointer { MPI_Bcast($0.baseAddress, Int32(count), T.datatype, Int32(root), comm) }
        try Communicator.check(code, "MPI_Bcast")
    }

    /// Every rank's `values` (each rank passing the same count), concatenated in rank order.
    public func allgather<T: MPIScalar>(_ values: [T]) throws(MPIError) -> [T] {
        guard let comm else { return values }
        var all = [T](unsafeUninitializedCapacity: values.count * size) { _, initialized in initialized = values.count * size }
        let code = values.withUnsafeBufferPointer { mine in
            all.withUnsafeMutableBufferPointer {
                MPI_Allgather(mine.baseAddress, Int32(values.count), T.datatype, $0.baseAddress, Int32(values.count), T.datatype, comm)
            }
        }
        try Communicator.check(code, "MPI_Allgather")
        return all
    }

    /// Every rank's `values` (each rank passing the same count) summed element by element, in
    /// place. MPI picks the order of the additions, so callers give each element one non-zero
    /// addend at most: then the sum is that addend exactly, on every rank.
    func allreduceSum(_ values: inout [Double]) throws(MPIError) {
        guard let comm else { return }
        let chunk = Int(Int32.max)
        for start in stride(from: 0, to: values.count, by: chunk) {
            let count = Int32(min(chunk, values.count - start))
            let code = values.withUnsafeMutableBufferPointer {
                MPI_Allreduce(cmpi_in_place(), $0.baseAddress! + start, count, Double.datatype, cmpi_op_sum(), comm)
            }
            try Communicator.check(code, "MPI_Allreduce")
        }
    }

    func allreduceMinimum(_ value: Int64) throws(MPIError) -> Int64 {
        guard let comm else { return value }
        var input = value, output: Int64 = 0
        try Communicator.check(MPI_Allreduce(&input, &output, 1, Int64.datatype, cmpi_op_min(), comm), "MPI_Allreduce")
        return output
    }
}
