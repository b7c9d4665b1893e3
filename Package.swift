// swift-tools-version:6.0
import Foundation
import PackageDescription

// Release builds are for speed: no bounds or exclusivity checks in the kernels, and a CPU with FMA
// (without one, SIMD.addingProduct is a libm call per lane). Everything but the kernels is built
// for haswell (AVX2 + FMA, any x86-64 since 2013), the binary's minimum.
let release: [String] = ["-Ounchecked", "-enforce-exclusivity=unchecked"]
let fast: [SwiftSetting] = [.unsafeFlags(release + ["-target-cpu", "haswell"], .when(configuration: .release))]

// Swift has no per-function target attribute, so the kernels (Sources/FlashKernels) are compiled
// twice: as FlashKernelsAVX2 for haswell and, through the symlink Sources/FlashKernelsAVX512, as
// FlashKernelsAVX512 for skylake-avx512 (AVX-512 F/BW/CD/DQ/VL, the x86-64-v4 level: Skylake-SP and
// later, Zen 4 and later).
// FlashAttention calls one of the two, chosen once per process from what the CPU reports.
// Debug builds compile both for the build machine's default CPU, which leaves FMA a libm call:
// correct, and slow.
func kernels(_ cpu: String, _ defines: [String]) -> [SwiftSetting] {
    [.unsafeFlags(release + ["-target-cpu", cpu], .when(configuration: .release))] + defines.map { .define($0) }
}

let package = Package(
    name: "flashdist",
    products: [
        .executable(name: "flashdist", targets: ["flashdist"]),
        .library(name: "FlashAttention", targets: ["FlashAttention"]),
        // The C ABI (header Sources/CFlashdist/include/flashdist.h) that the Python package loads.
        .library(name: "flashdist_c", type: .dynamic, targets: ["FlashAttentionC"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // The problem, its masks and tiles, the threaded scheduler, the CPU's instruction sets and caches.
        .target(name: "FlashAttentionCore", swiftSettings: fast),
        // Hints for the kernels that Swift cannot spell (a prefetch, an optimisation barrier). Its
        // debug info is DWARF 4, which valgrind 3.19 (launch/profile.sh) still reads in the binary.
        .target(name: "CPrefetch", cSettings: [.unsafeFlags(["-gdwarf-4"])]),
        // The kernels, one source folder built once per instruction set.
        .target(name: "FlashKernelsAVX2", dependencies: ["FlashAttentionCore", "CPrefetch"], path: "Sources/FlashKernels",
                swiftSettings: kernels("haswell", [])),
        .target(name: "FlashKernelsAVX512", dependencies: ["FlashAttentionCore", "CPrefetch"], path: "Sources/FlashKernelsAVX512",
                swiftSettings: kernels("skylake-avx512", ["FLASHDIST_AVX512"])),
        // The public API: forward and backward on the kernels of the chosen instruction set. Knows
        // nothing of files or MPI.
        .target(name: "FlashAttention", dependencies: ["FlashAttentionCore", "FlashKernelsAVX2", "FlashKernelsAVX512"],
                swiftSettings: fast),
        // The C ABI: its header, and the Swift entry points that check buffers and report errors
        // as codes and messages instead of trapping.
        .target(name: "CFlashdist"),
        .target(name: "FlashAttentionC", dependencies: ["CFlashdist", "FlashAttention", "Distributed", "TensorSlices"],
                swiftSettings: fast),
        // A plain float64 attention, forward and backward, that the kernels are checked against.
        .target(name: "AttentionReference"),
        // A range along one axis of a C-order array, and copies in and out of it: the part of a
        // tensor that a rank reads, holds or writes. Shared by the files and the partitions.
        .target(name: "TensorSlices", swiftSettings: fast),
        // .npy and safetensors reading and writing, and outputs written to a temporary name then renamed.
        .target(name: "TensorIO", dependencies: ["TensorSlices"], swiftSettings: fast),
        // OpenMPI's C API; a shim header turns its handle macros into functions Swift can call.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        // Ranks, collectives and the partitions of attention across ranks. Knows nothing of files.
        .target(name: "Distributed", dependencies: ["CMPI", "FlashAttention", "TensorSlices"],
                swiftSettings: fast),
        // Output files written by all ranks at once (MPI-IO), staged and switched into place together.
        .target(name: "DistributedIO", dependencies: ["CMPI", "Distributed", "TensorIO", "TensorSlices"],
                swiftSettings: fast),
        .executableTarget(
            name: "flashdist",
            dependencies: [
                "FlashAttention", "AttentionReference", "TensorIO", "TensorSlices", "Distributed", "DistributedIO",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: fast),
        // Run under mpirun by Tests/mpi/run.sh: the all-to-all re-shard round-trips exactly.
        .executableTarget(name: "reshard-check", dependencies: ["Distributed", "TensorSlices"], path: "Tests/mpi/ReshardCheck"),
        .testTarget(name: "FlashAttentionTests", dependencies: ["FlashAttention", "FlashAttentionCore", "AttentionReference"]),
        .testTarget(name: "TensorIOTests", dependencies: ["TensorIO", "TensorSlices", "AttentionReference"]),
        .testTarget(name: "FlashdistCLITests", dependencies: ["TensorIO"]),
        // The pure logic of Distributed (head assignment, re-shard slices, ring layout, reduction
        // order) and every partition on a single-rank communicator, without mpirun.
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "FlashAttention", "TensorSlices"]),
    ]
)
