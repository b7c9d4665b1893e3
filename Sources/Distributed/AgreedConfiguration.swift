import FlashAttention

extension KernelConfiguration {
    /// One kernel configuration for every rank (collective): the narrowest instruction set any
    /// rank runs (its `FLASHDIST_ISA` or its widest) and rank 0's tiles, so that each rank
    /// computes exactly the bits one process of that configuration would. Without mpirun it is
    /// this process's own. A rank's unusable `FLASHDIST_ISA` is every rank's error.
    public static func agreed(on communicator: Communicator, environment: [String: String]) throws -> KernelConfiguration {
        var configuration = try communicator.agree { try host(environment: environment) }
        guard communicator.isDistributed else { return configuration }
        let level = Int64(InstructionSet.allCases.firstIndex(of: configuration.instructionSet)!)
        configuration.instructionSet = InstructionSet.allCases[Int(try communicator.allgather([level]).min()!)]
        let tiling = configuration.tiling
        var tiles = [tiling.keyColumns, tiling.backwardRows, tiling.backwardKeys ?? 0, tiling.forwardRows ?? 0,
                     tiling.caches.l1, tiling.caches.l2, tiling.caches.l3].map(Int64.init)
        try communicator.broadcast(&tiles, from: 0)
        let t = tiles.map(Int.init)
        configuration.tiling = Tiling(keyColumns: t[0], backwardRows: t[1], backwardKeys: t[2] == 0 ? nil : t[2], forwardRows: t[3] == 0 ? nil : t[3],
                                      caches: CacheSizes(l1: t[4], l2: t[5], l3: t[6]))
        return configuration
    }
}
