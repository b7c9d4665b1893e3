import ArgumentParser
import FlashAttention
import Foundation

/// `--no-tuning`, for the commands that run the kernels.
struct TuningOptions: ParsableArguments {
    @Flag(help: "Ignore the tuning file of `flashdist tune` and use tiles fitted to the caches (as FLASHDIST_TUNING=off).")
    var noTuning = false
}

/// A command whose kernels take their tiles from the tuning file unless told not to.
protocol TunedCommand {
    var tuning: TuningOptions { get }
}

extension TuningOptions {
    /// The tiles for `isa`: the tuning file's entry for this machine (`flashdist tune`), or the
    /// fitted ones. A file that cannot be used is one warning line, and the run goes on.
    static func tiles(for isa: InstructionSet, command: ParsableCommand,
                      environment: [String: String]) -> (tiling: Tiling, source: TileSource) {
        // tune times its own candidates against the fitted tiles.
        let ignore = command is TuneCommand || ((command as? TunedCommand)?.tuning.noTuning ?? false)
        let choice = TuningFile.tiling(for: isa, environment: environment, ignore: ignore)
        if let warning = choice.warning { FileHandle.standardError.write(Data("flashdist: warning: \(warning)\n".utf8)) }
        return (choice.tiling, choice.source)
    }
}
