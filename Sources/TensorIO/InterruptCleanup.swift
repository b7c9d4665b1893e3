import Foundation

/// What SIGINT and SIGTERM do: remove the output set being written (nothing half-written stays
/// behind) and exit 130 or 143, as a shell reports a process those signals ended.
///
/// The signals are blocked in every thread and taken by one thread waiting in `sigwait`, so the
/// clean-up runs as ordinary code (not in a signal handler) even while every worker computes.
/// The output switch holds the same lock while it makes a set current, so an interrupt either
/// removes a set before it became current or finds it already current and leaves it.
public final class InterruptCleanup: @unchecked Sendable {
    public static let shared = InterruptCleanup()
    private let lock = NSLock()
    private var directories: [String] = []

    /// Blocks SIGINT and SIGTERM and starts the thread that takes them; call first thing in
    /// `main`, before any other thread exists, so every later thread inherits the mask.
    public func install() {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        let waiter = Thread { [self, signals] in
            var signals = signals, received: Int32 = 0
            while sigwait(&signals, &received) != 0 {}
            lock.lock()
            for directory in directories { removeSet(directory) }
            _exit(128 + received)
        }
        waiter.start()
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
