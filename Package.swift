// swift-tools-version: 6.0
// The package's layers, visible here (see README "Design"):
//   VNetCore   pure model: config, address arithmetic, allocation, planning, rendering. No I/O.
//   vnetctl    the operator CLI (argument parsing, files, output) over VNetCore.
//   vnet-bench benchmarks that print figures; results are recorded in BENCHMARKS.md.
import PackageDescription

let package = Package(
    name: "vnet",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "VNetCore", targets: ["VNetCore"]),
        .executable(name: "vnetctl", targets: ["vnetctl"]),
        .executable(name: "vnet-bench", targets: ["vnet-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .target(name: "VNetCore"),
        .executableTarget(
            name: "vnetctl",
            dependencies: [
                "VNetCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "vnet-bench",
            dependencies: [
                "VNetCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "VNetCoreTests", dependencies: ["VNetCore"]),
        // Runs the built vnetctl as an operator would: exit codes, text and JSON output.
        .testTarget(name: "VNetCtlTests", dependencies: ["vnetctl", "VNetCore"]),
        // Needs root and real tools (ISC dhcpd, iptables-restore, ip netns): the rendered documents must be
        // accepted by the programs that will read them. Fails in CI when the tools are missing.
        .testTarget(name: "VNetRootTests", dependencies: ["VNetCore"]),
    ],
    swiftLanguageModes: [.v6]
)
