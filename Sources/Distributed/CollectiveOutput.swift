import Foundation
import TensorIO

/// The output files of a run, written by all ranks together and renamed into place only once
/// every rank has written all of its parts.
///
/// Rank 0 prepares the directory (`OutputDirectory`: created if missing, temporaries of dead runs
/// removed) and writes each file's header; every rank writes its own part of each tensor at its
/// own offsets (`CollectiveFile`), as the `OutputLayout` places it. The temporaries are named
/// after rank 0's process id, as `OutputDirectory` names its own, so a run that dies leaves only
/// files the next run recognises and removes. A single rank without MPI writes whole tensors
/// into the temporaries through `OutputDirectory` directly.
public final class CollectiveOutput {
    private let communicator: Communicator
    private let layout: OutputLayout
    /// Only on rank 0 (or a rank without MPI): the directory that stages and renames.
    private var directory: OutputDirectory?
    /// In the order of the layout's files: closing is collective, so every rank must go through
    /// them alike. Empty without MPI.
    private var files: [(name: String, file: CollectiveFile)] = []

    /// Prepares `path` and creates the temporaries of the layout's files with their headers;
    /// collective. A directory that cannot be written fails on every rank.
    public init(_ path: String, layout: OutputLayout, communicator: Communicator) throws {
        self.communicator = communicator
        self.layout = layout
        guard communicator.isDistributed else {
            let directory = try OutputDirectory(path)
            self.directory = directory
            do {
                for (name, header) in layout.files { try directory.stage(name, header) }
            } catch {
                directory.discard()
                throw error
            }
            return
        }
        var tag = [Int64(getpid())]
        try communicator.broadcast(&tag, from: 0)
        let rank = communicator.rank
        directory = try communicator.agree { rank == 0 ? try OutputDirectory(path, tag: String(tag[0])) : nil }
        do {
            for (name, header) in layout.files {
                directory?.adopt(name)
                let temporary = OutputDirectory.temporaryPath(in: path, tag: String(tag[0]), name: name)
                let file = try communicator.agree { try CollectiveFile(path: temporary, communicator: communicator) }
                files.append((name, file))
                try communicator.agree { if rank == 0 { try file.write(header, at: 0) } }
            }
        } catch {
            abandon()
            throw error
        }
    }

    /// Writes this rank's `slice` of output tensor `name`, converted to its element type;
    /// collective.
    public func write(_ name: String, _ values: [Float], slice: AxisSlice) throws {
        let placement = layout.placements[name]!
        precondition(slice.shape == placement.shape, "\(name) is \(shapeText(placement.shape)), not \(shapeText(slice.shape))")
        let bytes = values.withUnsafeBufferPointer { Npy.elements($0, as: placement.dtype) }
        try communicator.agree {
            if let file = files.first(where: { $0.name == placement.file })?.file {
                try file.write(bytes, elementBytes: placement.dtype.byteCount, as: slice, at: placement.offset)
            } else {
                precondition(slice.range.count == slice.shape[slice.axis], "a single rank writes whole tensors")
                try directory!.write(placement.file, bytes, at: placement.offset)
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
