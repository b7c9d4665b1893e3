/// A problem with a tensor file, named by its path, in one line.
public struct TensorIOError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let problem: String
    public init(_ path: String, _ problem: String) {
        self.path = path
        self.problem = problem
    }
    public var description: String { "\(FilePath.display(path)): \(problem)" }
}
