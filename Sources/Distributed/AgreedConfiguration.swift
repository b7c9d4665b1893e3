import FlashAttention

extension KernelConfiguration {
    /// One kernel configuration for every rank (collective): the narrowest instruction set any
    /// rank runs (its `FLASHDIST_ISA` or its widest) and the tiles rank 0 takes for that set
    /// (`tiles`, called on rank 0 alone: its tuning file's entry, or its fitted tiles), so that each
    /// rank computes exactly the bits one process of that configuration would. Without mpirun it
    /// is this process's own. A rank's unusable `FLASHDIST_ISA` is every rank's error.
    public static func agreed(on communicator: Communicator, environment: [String: String],
                              tiles: (InstructionSet) -> (tiling: Tiling, source: TileSource)) throws -> KernelConfiguration {
        var configuration = try communicator.agree { try host(environment: environment) }
        if communicator.isDistributed {
            let level = Int64(InstructionSet.allCases.firstIndex(of: configuration.instructionSet)!)
            configuration.instructionSet = InstructionSet.allCases[Int(try communicator.allgather([level]).min()!)]
        }
        if communicator.rank == 0 { (configuration.tiling, configuration.tileSource) = tiles(configuration.instructionSet) }
        guard communicator.isDistributed else { return configuration }
        let tiling = configuration.tiling
        var shared = [tiling.keyColumns, tiling.backwardRows, tiling.backwardKeys ?? 0, tiling.forwardRows ?? 0,
                      tiling.caches.l1, tiling.caches.l2, tiling.caches.l3,
                      TileSource.allCases.firstIndex(of: configuration.tileSource)!, tiling.cores].map(Int64.init)
        try communicator.broadcast(&shared, from: 0)
        let t = shared.map(Int.init)
        configuration.tiling = Tiling(keyColumns: t[0], backwardRows: t[1], backwardKeys: t[2] == 0 ? nil : t[2], forwardRows: t[3] == 0 ? nil : t[3],
                                      caches: CacheSizes(l1: t[4], l2: t[5], l3: t[6]), cores: t[8])
        configuration.tileSource = TileSource.allCases[t[7]]
        return configuration
    }
}
