import Foundation

/// Test-only fault injection: with `FLASHDIST_FAULT_AT=STEP` in the environment, the process ends
/// at once (`_exit(99)`, as a kill would: no clean-up, no atexit) when it reaches the named step
/// of the output switch. Tests/faults/run.sh uses it to check that a crash at any step leaves
/// DIR holding one complete set.
public enum FaultPoint {
    private static let target = ProcessInfo.processInfo.environment["FLASHDIST_FAULT_AT"]

    public static func reached(_ step: String) {
        if step == target { _exit(99) }
    }
}
