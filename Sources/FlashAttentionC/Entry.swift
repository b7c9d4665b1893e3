import CFlashdist
import FlashAttention
import Foundation

/// A failure reported to a C caller: a status code and a one-line message.
struct CallFailure: Error, CustomStringConvertible {
    let status: flashdist_status
    let message: String
    var description: String { message }
}

/// Runs `body`, turning a thrown problem or buffer error into its status code and message.
func reportingFailures(_ message: UnsafeMutablePointer<CChar>?, _ size: Int,
                       _ body: () throws -> Void) -> Int32 {
    do {
        try body()
        return Int32(FLASHDIST_OK.rawValue)
    } catch let error as AttentionError {
        flashdist_set_message(message, size, error.description)
        return Int32(FLASHDIST_INVALID_PROBLEM.rawValue)
    } catch let failure as CallFailure {
        flashdist_set_message(message, size, failure.message)
        return Int32(failure.status.rawValue)
    } catch {
        flashdist_set_message(message, size, "\(error)")
        return Int32(FLASHDIST_INVALID_PROBLEM.rawValue)
    }
}

/// The pointer, after checking it is set and holds exactly the elements the problem needs.
func checked<Pointer>(_ pointer: Pointer?, count: Int64, expected: Int, name: String) throws -> Pointer {
    guard let pointer else {
        throw CallFailure(status: FLASHDIST_INVALID_BUFFER, message: "\(name): no buffer (NULL)")
    }
    guard count == expected else {
        throw CallFailure(status: FLASHDIST_INVALID_BUFFER,
                          message: "\(name): \(count) elements, but the problem needs \(expected)")
    }
    return pointer
}

/// The buffer of `expected` floats at `pointer`, after `checked`.
func buffer(_ pointer: UnsafePointer<Float>?, count: Int64, expected: Int, name: String) throws -> UnsafeBufferPointer<Float> {
    UnsafeBufferPointer(start: try checked(pointer, count: count, expected: expected, name: name), count: expected)
}

func buffer(_ pointer: UnsafeMutablePointer<Float>?, count: Int64, expected: Int,
            name: String) throws -> UnsafeMutableBufferPointer<Float> {
    UnsafeMutableBufferPointer(start: try checked(pointer, count: count, expected: expected, name: name), count: expected)
}

func checkedThreads(_ threads: Int32) throws -> Int {
    guard threads >= 1 else {
        throw CallFailure(status: FLASHDIST_INVALID_PROBLEM, message: "threads must be at least 1, got \(threads)")
    }
    return Int(threads)
}

func described(_ problem: UnsafePointer<flashdist_problem>?) throws -> AttentionProblem {
    guard let problem else { throw CallFailure(status: FLASHDIST_INVALID_BUFFER, message: "problem: NULL") }
    return try problem.pointee.attentionProblem()
}

@_cdecl("flashdist_forward")
public func flashdistForward(_ problem: UnsafePointer<flashdist_problem>?,
                             _ q: UnsafePointer<Float>?, _ qCount: Int64, _ k: UnsafePointer<Float>?, _ kCount: Int64,
                             _ v: UnsafePointer<Float>?, _ vCount: Int64,
                             _ o: UnsafeMutablePointer<Float>?, _ oCount: Int64,
                             _ lse: UnsafeMutablePointer<Float>?, _ lseCount: Int64,
                             _ threads: Int32, _ message: UnsafeMutablePointer<CChar>?, _ messageSize: Int) -> Int32 {
    reportingFailures(message, messageSize) {
        let p = try described(problem)
        let threads = try checkedThreads(threads)
        FlashAttention.forward(p, q: try buffer(q, count: qCount, expected: p.queryElements, name: "q"),
                               k: try buffer(k, count: kCount, expected: p.keyElements, name: "k"),
                               v: try buffer(v, count: vCount, expected: p.valueElements, name: "v"),
                               o: try buffer(o, count: oCount, expected: p.outputElements, name: "o"),
                               lse: try buffer(lse, count: lseCount, expected: p.lseElements, name: "lse"),
                               threads: threads)
    }
}

@_cdecl("flashdist_backward")
public func flashdistBackward(_ problem: UnsafePointer<flashdist_problem>?,
                              _ q: UnsafePointer<Float>?, _ qCount: Int64, _ k: UnsafePointer<Float>?, _ kCount: Int64,
                              _ v: UnsafePointer<Float>?, _ vCount: Int64,
                              _ o: UnsafePointer<Float>?, _ oCount: Int64, _ lse: UnsafePointer<Float>?, _ lseCount: Int64,
                              _ dO: UnsafePointer<Float>?, _ dOCount: Int64,
                              _ dQ: UnsafeMutablePointer<Float>?, _ dQCount: Int64,
                              _ dK: UnsafeMutablePointer<Float>?, _ dKCount: Int64,
                              _ dV: UnsafeMutablePointer<Float>?, _ dVCount: Int64,
                              _ threads: Int32, _ message: UnsafeMutablePointer<CChar>?, _ messageSize: Int) -> Int32 {
    reportingFailures(message, messageSize) {
        let p = try described(problem)
        let threads = try checkedThreads(threads)
        FlashAttention.backward(p, q: try buffer(q, count: qCount, expected: p.queryElements, name: "q"),
                                k: try buffer(k, count: kCount, expected: p.keyElements, name: "k"),
                                v: try buffer(v, count: vCount, expected: p.valueElements, name: "v"),
                                o: try buffer(o, count: oCount, expected: p.outputElements, name: "o"),
                                lse: try buffer(lse, count: lseCount, expected: p.lseElements, name: "lse"),
                                dO: try buffer(dO, count: dOCount, expected: p.outputElements, name: "dout"),
                                dQ: try buffer(dQ, count: dQCount, expected: p.queryElements, name: "dq"),
                                dK: try buffer(dK, count: dKCount, expected: p.keyElements, name: "dk"),
                                dV: try buffer(dV, count: dVCount, expected: p.valueElements, name: "dv"),
                                threads: threads)
    }
}

@_cdecl("flashdist_sink_gradient")
public func flashdistSinkGradient(_ problem: UnsafePointer<flashdist_problem>?,
                                  _ o: UnsafePointer<Float>?, _ oCount: Int64, _ lse: UnsafePointer<Float>?, _ lseCount: Int64,
                                  _ dO: UnsafePointer<Float>?, _ dOCount: Int64,
                                  _ dSinks: UnsafeMutablePointer<Float>?, _ dSinksCount: Int64,
                                  _ message: UnsafeMutablePointer<CChar>?, _ messageSize: Int) -> Int32 {
    reportingFailures(message, messageSize) {
        let p = try described(problem)
        guard p.options.sinks != nil else { throw CallFailure(status: FLASHDIST_INVALID_PROBLEM, message: "the problem has no sinks") }
        let array = { (pointer: UnsafePointer<Float>, count: Int) in Array(UnsafeBufferPointer(start: pointer, count: count)) }
        let gradient = SinkGradient.compute(
            p, o: array(try checked(o, count: oCount, expected: p.queryElements, name: "o"), p.queryElements),
            dO: array(try checked(dO, count: dOCount, expected: p.queryElements, name: "dout"), p.queryElements),
            lse: array(try checked(lse, count: lseCount, expected: p.lseElements, name: "lse"), p.lseElements), lseResidual: nil)
        try checked(dSinks, count: dSinksCount, expected: p.heads, name: "dsinks").update(from: gradient, count: p.heads)
    }
}

@_cdecl("flashdist_dropout_mask")
public func flashdistDropoutMask(_ problem: UnsafePointer<flashdist_problem>?,
                                 _ mask: UnsafeMutablePointer<Float>?, _ maskCount: Int64,
                                 _ message: UnsafeMutablePointer<CChar>?, _ messageSize: Int) -> Int32 {
    reportingFailures(message, messageSize) {
        let p = try described(problem)
        guard p.options.dropout != nil, !p.packedLSE else {
            throw CallFailure(status: FLASHDIST_INVALID_PROBLEM,
                              message: "the dropout mask is only for fixed-length batches with dropout above 0")
        }
        let perHead = (p.totalQueries / p.batch) * (p.totalKeys / p.batch)
        var out = try checked(mask, count: maskCount, expected: p.batch * p.heads * perHead, name: "mask")
        guard perHead > 0 else { return }
        for b in 0..<p.batch {
            for h in 0..<p.heads {
                let factors = FlashAttention.dropoutKeepFactors(p, batch: b, head: h)
                factors.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: perHead) }
                out += perHead
            }
        }
    }
}

/// All cores, shared out among the ranks mpirun starts on this machine, as `--threads` defaults.
@_cdecl("flashdist_default_threads")
public func flashdistDefaultThreads() -> Int32 {
    let ranksHere = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap { Int($0) } ?? 1
    return Int32(clamping: max(1, ProcessInfo.processInfo.activeProcessorCount / max(1, ranksHere)))
}

@_cdecl("flashdist_abi_version")
public func flashdistABIVersion() -> Int32 { FLASHDIST_ABI_VERSION }
