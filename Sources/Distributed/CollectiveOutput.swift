import Foundation
import TensorIO

/// The .npy outputs of a run, written by all ranks together and renamed into place only once
/// every rank has written all of its parts.
///
/// Rank 0 prepares the directory (`OutputDirectory`: created if missing, temporaries of dead runs
/// removed) and writes each header; every rank writes its own part at its own offsets
/// (`CollectiveFile`). The temporaries are named after rank 0's process id, as `OutputDirectory`
/// names its own, so a run that dies leaves only files the next run recognises and removes. A
/// single rank without MPI stages whole arrays through `OutputDirectory` directly.
public final class CollectiveOutput {
    private let communicator: Communicator
    private let shapes: [String: [Int]]
    /// Only on rank 0 (or a rank without MPI): the directory that stages and renames.
    private var directory: OutputDirectory?
    /// In the order of `outputs`: closing is collective, so every rank must go through them alike.
    private var files: [(name: String, file: CollectiveFile)] = []

    /// Prepares `path` and creates the temporaries of `outputs` (name and shape of each float32
    /// array); collective. A directory that cannot be written fails on every rank.
    public init(_ path: String, outputs: [(name: String, shape: [Int])], communicator: Communicator) throws {
        self.communicator = communicator
        shapes = Dictionary(outputs.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
        guard communicator.isDistributed else {
            directory = try OutputDirectory(path)
            return
        }
        var tag = [Int64(getpid())]
        try communicator.broadcast(&tag, from: 0)
        let rank = communicator.rank
        directory = try communicator.agree { rank == 0 ? try OutputDirectory(path, tag: String(tag[0])) : nil }
        do {
            for (name, shape) in outputs {
                directory?.adopt(name)
                let temporary = OutputDirectory.temporaryPath(in: path, tag: String(tag[0]), name: name)
                let file = try communicator.agree { try CollectiveFile(path: temporary, communicator: communicator) }
                files.append((name, file))
                try communicator.agree { if rank == 0 { try file.write(Npy.headerBytes(dtype: .float32, shape: shape), at: 0) } }
            }
        } catch {
            abandon()
            throw error
        }
    }

    /// Writes this rank's `slice` of output `name`; collective.
    public func write(_ name: String, _ values: [Float], slice: AxisSlice) throws {
        precondition(slice.shape == shapes[name], "\(name) is \(shapeText(shapes[name] ?? [])), not \(shapeText(slice.shape))")
        try communicator.agree {
            if let file = files.first(where: { $0.name == name })?.file {
                try file.write(values, as: slice, at: Npy.headerBytes(dtype: .float32, shape: slice.shape).count)
            } else {
                precondition(slice.range.count == slice.shape[slice.axis], "a single rank writes whole arrays")
                try values.withUnsafeBufferPointer { try directory!.stage(name, Npy.encode($0, shape: slice.shape)) }
            }
        }
    }

    /// Renames every output into place once every rank has closed its files without error;
    /// collective.
    public func commit() throws {
        try communicator.agree { for (_, file) in files { try file.close() } }
        try communicator.agree { try directory?.commit() }
    }

    /// Removes the temporaries after a failure every rank agreed on; collective.
    public func abandon() {
        for (_, file) in files { try? file.close() }
        directory?.discard()
    }
}
