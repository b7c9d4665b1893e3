import Foundation
import TensorIO

/// One value of a bench record: a column of a CSV row or a key of a JSON line.
enum RecordValue {
    case text(String)
    case integer(Int)
    case real(Double)
    case flag(Bool)
    /// Per-rank detail: a JSON array, or the values joined by ";" in one CSV cell.
    case list([RecordValue])
    /// A phase that did not run (no backward): an empty CSV cell, JSON null.
    case missing

    var json: String {
        switch self {
        case .text(let text): jsonQuoted(text)
        case .integer(let value): String(value)
        case .real(let value): value.isFinite ? "\(value)" : "null"
        case .flag(let value): String(value)
        case .list(let values): "[" + values.map(\.json).joined(separator: ", ") + "]"
        case .missing: "null"
        }
    }

    var csv: String {
        let plain = switch self {
        case .text(let text): text
        case .list(let values): values.map(\.csv).joined(separator: ";")
        case .missing: ""
        default: json
        }
        // RFC 4180: a cell holding a separator, quote or line break is quoted, quotes doubled.
        guard plain.contains(where: { ",\"\n\r".contains($0) }) else { return plain }
        return "\"" + plain.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// Named values in a fixed order.
typealias Record = [(name: String, value: RecordValue)]

/// `--record FILE`: every bench run appends one row, a CSV line or a JSON line as the extension
/// says, written and closed at once so an interrupted sweep keeps every finished row. A new CSV
/// file gets the header first; an existing one must have exactly this version's header, since
/// rows under another header would be read into the wrong columns.
struct RecordFile {
    enum Format { case csv, jsonLines }

    let path: String
    let format: Format

    /// Checks the path before anything runs, so a bad one costs no benchmark time.
    init(_ path: String, columns: [String]) throws {
        switch URL(fileURLWithPath: path).pathExtension.lowercased() {
        case "csv": format = .csv
        case "jsonl": format = .jsonLines
        default: throw TensorIOError(path, "--record needs a .csv or .jsonl file")
        }
        self.path = path
        guard format == .csv, let header = try Self.firstLine(path) else { return }
        let expected = columns.joined(separator: ",")
        guard header == expected else {
            let found = header.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            let first = zip(found, columns).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(found.count, columns.count)
            let theirs = first < found.count ? "'\(found[first])'" : "nothing"
            let ours = first < columns.count ? "'\(columns[first])'" : "nothing"
            throw TensorIOError(path, "its header differs from this flashdist's columns (column \(first + 1) is \(theirs),"
                                + " expected \(ours)); record into a new file")
        }
    }

    func append(_ record: Record) throws {
        let existing = FileManager.default.contents(atPath: path) ?? Data()
        var text = ""
        // A line cut short by a run that was killed while writing stays a (bad) line of its own.
        if let last = existing.last, last != UInt8(ascii: "\n") { text = "\n" }
        switch format {
        case .csv:
            if existing.isEmpty { text = record.map(\.name).joined(separator: ",") + "\n" }
            text += record.map(\.value.csv).joined(separator: ",") + "\n"
        case .jsonLines:
            text += Self.jsonObject(record) + "\n"
        }
        guard let file = FileHandle(forUpdatingAtPath: path) ?? create() else {
            throw TensorIOError(path, "cannot be opened for appending")
        }
        defer { try? file.close() }
        do {
            try file.seekToEnd()
            try file.write(contentsOf: Data(text.utf8))
            try file.synchronize()
        } catch {
            throw TensorIOError(path, "cannot be written: \(error.localizedDescription)")
        }
    }

    static func jsonObject(_ record: Record) -> String {
        "{" + record.map { "\"\($0.name)\": \($0.value.json)" }.joined(separator: ", ") + "}"
    }

    private func create() -> FileHandle? {
        FileManager.default.createFile(atPath: path, contents: nil) ? FileHandle(forUpdatingAtPath: path) : nil
    }

    /// The first line of the file, or nil when it does not exist or is empty.
    private static func firstLine(_ path: String) throws -> String? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else { throw TensorIOError(path, "cannot be read") }
        let line = data.prefix { $0 != UInt8(ascii: "\n") }
        return line.isEmpty ? nil : String(decoding: line, as: UTF8.self)
    }
}
