// swift-tools-version: 6.0
// The package's layers, visible here (see README "Design"):
//   VNetCore         pure model: config, address arithmetic, allocation, planning, rendering. No I/O.
//   CZMQ, ZMQ        libzmq (system library) and its thin Swift wrapper.
//   VNetProto        the generated wire schema (proto/vnet.proto) and its mapping to core values.
//   VNetBus          what every bus peer shares: envelope codec, endpoints, key files, request/reply client.
//   VNetStore        the coordinator's durable allocations in SQLite (GRDB).
//   VNetCoordinator  the coordinator's event loop: publisher, snapshots, control API, liveness.
//   VNetAgent        the node agent's event loop and the host-backend protocol it applies through.
//   VNetLinux        the Linux host backend: command runner, ip -json observation, ip -batch apply.
//   CSpawn           posix_spawn with every inherited descriptor closed (not reachable from Swift's Glibc).
//   CPacket          AF_PACKET sockets with in-kernel BPF filters (linux/filter.h is not reachable either).
//   VNetFuzzTargets  every input parser as a fuzz target, for vnet-bench fuzz and the libFuzzer harness (Fuzz/).
//   vnetctl, vnet-coordinator, vnet-agent, vnet-bench: argument parsing and wiring only.
import PackageDescription

let package = Package(
    name: "vnet",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "VNetCore", targets: ["VNetCore"]),
        .executable(name: "vnetctl", targets: ["vnetctl"]),
        .executable(name: "vnet-coordinator", targets: ["vnet-coordinator"]),
        .executable(name: "vnet-agent", targets: ["vnet-agent"]),
        .executable(name: "vnet-bench", targets: ["vnet-bench"]),
        // For the libFuzzer harness in Fuzz/ (a package of its own, built with --sanitize fuzzer).
        .library(name: "VNetFuzzTargets", targets: ["VNetFuzzTargets"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .target(name: "VNetCore"),
        .systemLibrary(name: "CZMQ"),
        .target(name: "ZMQ", dependencies: ["CZMQ"]),
        .target(name: "VNetProto", dependencies: ["VNetCore", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .target(name: "VNetBus", dependencies: ["VNetProto", "ZMQ", "VNetCore", .product(name: "Logging", package: "swift-log")]),
        .target(name: "VNetStore", dependencies: ["VNetCore", .product(name: "GRDB", package: "GRDB.swift")]),
        .target(name: "VNetCoordinator", dependencies: ["VNetBus", "VNetStore", "VNetCore", .product(name: "Logging", package: "swift-log")]),
        .target(name: "VNetAgent", dependencies: ["VNetBus", "VNetCore", .product(name: "Logging", package: "swift-log")]),
        .target(name: "CSpawn"),
        .target(name: "CPacket"),
        .target(name: "VNetLinux", dependencies: ["VNetAgent", "VNetBus", "VNetCore", "VNetProto", "CSpawn", "CPacket"]),
        .executableTarget(
            name: "vnetctl",
            dependencies: ["VNetCore", "VNetBus", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "vnet-coordinator",
            dependencies: ["VNetCoordinator", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "vnet-agent",
            dependencies: ["VNetAgent", "VNetBus", "VNetLinux", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .target(name: "VNetFuzzTargets", dependencies: ["VNetCore", "VNetBus", "VNetProto"]),
        .executableTarget(
            name: "vnet-bench",
            dependencies: ["VNetCore", "VNetFuzzTargets", "VNetBus", "VNetStore", "VNetCoordinator", "VNetAgent", "VNetLinux", "ZMQ", "CSpawn",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(name: "VNetCoreTests", dependencies: ["VNetCore"]),
        // Runs the built vnetctl as an operator would: exit codes, text and JSON output.
        .testTarget(name: "VNetCtlTests", dependencies: ["vnetctl", "VNetCore"]),
        // Needs root and real tools (ISC dhcpd, iptables-restore, ip netns, protobuf-c): the rendered documents
        // and encoded messages must be accepted by the programs that read them. Fails in CI when tools are missing.
        .testTarget(name: "VNetRootTests", dependencies: ["VNetCore", "VNetProto", "VNetLinux"]),
        // The bus: codec and mapping, ZeroMQ wrapper, store, and real processes on 127.0.0.1.
        .testTarget(name: "VNetBusTests",
                    dependencies: ["VNetBus", "VNetProto", "VNetStore", "VNetCoordinator", "VNetAgent", "ZMQ", "VNetCore",
                                   "vnet-coordinator", "vnet-agent", "vnetctl"]),
    ],
    swiftLanguageModes: [.v6]
)
