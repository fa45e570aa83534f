// swift-tools-version: 6.0
// The libFuzzer harness: coverage-guided fuzzing of every input parser (VNetFuzzTargets). A package of its own
// because it is built with `--sanitize fuzzer`, which gives the binary libFuzzer's main. Run with Fuzz/run.sh.
import PackageDescription

let package = Package(
    name: "vnet-fuzz",
    dependencies: [.package(name: "vnet", path: "..")],
    targets: [
        .executableTarget(
            name: "vnet-fuzz",
            dependencies: [.product(name: "VNetFuzzTargets", package: "vnet")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
    ],
    swiftLanguageModes: [.v6]
)
