import Distributed
import Foundation
import TensorIO
import TensorSlices

/// The output files of a run, written by all ranks together and made DIR's current set (see
/// `OutputDirectory`) only once every rank has written all of its parts.
///
/// Rank 0 prepares the directory (created if missing, what dead runs left removed, the new set's
/// directory made) and creates each file with its header and its full size reserved, so a full
/// disk fails before any compute; every rank writes its own part of each tensor at its own
/// offsets (`CollectiveFile`), as the `OutputLayout` places it. Then every rank syncs and closes
/// its files, the ranks agree that all succeeded, and rank 0 alone checks sizes, writes the
/// manifest and makes the switch. A single rank without MPI writes whole tensors through
/// `OutputDirectory` directly.
public final class CollectiveOutput {
    private let communicator: Communicator
    private let layout: OutputLayout
    /// Only on rank 0 (or a rank without MPI): the directory that stages and switches.
    private var directory: OutputDirectory?
    /// In the order of the layout's files: closing is collective, so every rank must go through
    /// them alike. Empty without MPI.
    private var files: [(name: String, file: CollectiveFile)] = []

    /// Prepares `path` and creates the layout's files in the new set; collective. A directory
    /// that cannot be written, or a disk without room for the outputs, fails on every rank.
    public init(_ path: String, layout: OutputLayout, communicator: Communicator) throws {
        self.communicator = communicator
        self.layout = layout
        let rank = communicator.rank
        var tagBytes = rank == 0 ? Array(OutputDirectory.newTag().utf8) : []
        try communicator.broadcast(&tagBytes, from: 0)
        let tag = String(decoding: tagBytes, as: UTF8.self)
        do {
            try communicator.agree {
                guard rank == 0 else { return }
                let directory = try OutputDirectory(path, names: layout.files.map(\.name), tag: tag)
                self.directory = directory
                for (name, header) in layout.files { try directory.create(name, header: header, size: layout.size(of: name)) }
            }
            guard communicator.isDistributed else { return }
            for (name, _) in layout.files {
                let staged = "\(OutputDirectory.setPath(in: path, tag: tag))/\(name)"
                files.append((name, try communicator.agree { try CollectiveFile(path: staged, communicator: communicator) }))
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
        let bytes = values.withUnsafeBufferPointer { placement.dtype.encode($0) }
        try communicator.agree {
            if let file = files.first(where: { $0.name == placement.file })?.file {
                try file.write(bytes, elementBytes: placement.dtype.byteCount, as: slice, at: placement.offset)
            } else {
                precondition(slice.range.count == slice.shape[slice.axis], "a single rank writes whole tensors")
                try directory!.write(placement.file, bytes, at: placement.offset)
            }
        }
    }

    /// Makes the outputs DIR's current set once every rank has synced and closed its files
    /// without error; collective.
    public func commit() throws {
        try communicator.agree { for (_, file) in files { try file.close() } }
        try communicator.agree { try directory?.commit() }
    }

    /// Removes the new set after a failure every rank agreed on; collective.
    public func abandon() {
        for (_, file) in files { try? file.close() }
        directory?.discard()
    }
}
