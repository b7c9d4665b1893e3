// swift-tools-version:6.0
import Foundation
import PackageDescription

// Release builds are for speed: no bounds or exclusivity checks in the kernels, and a CPU with FMA
// (without one, SIMD.addingProduct is a libm call per lane). FLASHDIST_TARGET_CPU picks the CPU:
// haswell (AVX2 + FMA, the default, runs on any x86-64 from 2013 on), native, znver4,
// skylake-avx512, …
let targetCPU = ProcessInfo.processInfo.environment["FLASHDIST_TARGET_CPU"] ?? "haswell"
let fast: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-enforce-exclusivity=unchecked", "-target-cpu", targetCPU],
                 .when(configuration: .release)),
]

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
        // Kernels, masks and the threaded scheduler. Knows nothing of files or MPI.
        .target(name: "FlashAttention", swiftSettings: fast),
        // The C ABI: its header, and the Swift entry points that check buffers and report errors
        // as codes and messages instead of trapping.
        .target(name: "CFlashdist"),
        .target(name: "FlashAttentionC", dependencies: ["CFlashdist", "FlashAttention", "Distributed", "TensorIO"],
                swiftSettings: fast),
        // A plain float64 attention, forward and backward, that the kernels are checked against.
        .target(name: "AttentionReference"),
        // .npy reading and writing, and outputs written to a temporary name then renamed.
        .target(name: "TensorIO", swiftSettings: fast),
        // OpenMPI's C API; a shim header turns its handle macros into functions Swift can call.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        // Ranks, collectives and the partitions of attention across ranks.
        .target(name: "Distributed", dependencies: ["CMPI", "FlashAttention", "TensorIO"],
                swiftSettings: fast),
        .executableTarget(
            name: "flashdist",
            dependencies: [
                "FlashAttention", "AttentionReference", "TensorIO", "Distributed",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: fast),
        // Run under mpirun by Tests/mpi/run.sh: the all-to-all re-shard round-trips exactly.
        .executableTarget(name: "reshard-check", dependencies: ["Distributed", "TensorIO"], path: "Tests/mpi/ReshardCheck"),
        .testTarget(name: "FlashAttentionTests", dependencies: ["FlashAttention", "AttentionReference"]),
        .testTarget(name: "TensorIOTests", dependencies: ["TensorIO", "AttentionReference"]),
        .testTarget(name: "FlashdistCLITests", dependencies: ["TensorIO"]),
    ]
)
