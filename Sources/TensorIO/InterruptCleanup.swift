import Foundation

/// The write end of the pipe the signal handler reports on; set once, before the handler is.
nonisolated(unsafe) private var signalPipe: Int32 = -1

/// What SIGINT and SIGTERM do: remove the output set being written (nothing half-written stays
/// behind) and exit 130 or 143, as a shell reports a process those signals ended.
///
/// The handler only writes the signal's number to a pipe (all a handler may safely do); a thread
/// waiting on the pipe does the clean-up as ordinary code, whichever thread the signal hit and
/// even while every worker computes. The output switch holds the same lock while it makes a set
/// current, so an interrupt either removes a set before it became current or finds it already
/// current and leaves it.
public final class InterruptCleanup: @unchecked Sendable {
    public static let shared = InterruptCleanup()
    private let lock = NSLock()
    private var directories: [String] = []

    /// Installs the handlers and starts the waiting thread; call after MPI is initialised, so
    /// that these handlers, not the MPI library's, receive the signals mpirun forwards.
    public func install() {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { return }
        signalPipe = ends[1]
        let readEnd = ends[0]
        let waiter = Thread { [self] in
            var received: UInt8 = 0
            while read(readEnd, &received, 1) != 1 {}
            lock.lock()
            for directory in directories { removeSet(directory) }
            _exit(128 + Int32(received))
        }
        waiter.start()
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { signal in
            var number = UInt8(truncatingIfNeeded: signal)
            _ = write(signalPipe, &number, 1)
        }
        for signal in [SIGINT, SIGTERM] { sigaction(signal, &action, nil) }
    }

    /// Removes `directory` (a set being written) if the process is interrupted.
    func register(_ directory: String) { locked { directories.append(directory) } }
    func unregister(_ directory: String) { locked { directories.removeAll { $0 == directory } } }

    /// Runs `body`, the switch that makes `directory` current, with interrupts held off; once it
    /// succeeds the directory is no longer removed on an interrupt.
    func keep<E: Error>(_ directory: String, after body: () throws(E) -> Void) throws(E) {
        lock.lock()
        defer { lock.unlock() }
        try body()
        directories.removeAll { $0 == directory }
    }

    private func locked(_ body: () -> Void) {
        lock.lock()
        defer { lock.unlock() }
        body()
    }
}
