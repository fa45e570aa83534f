import Foundation
import Testing
import VNetLinux

/// Lane 3 from the host: boots the VM (`Tests/vm-lane.sh`: Debian's kernel, which has 802.1Q) and runs the
/// suites that need VLAN devices inside it, with this very test binary. In CI a missing qemu or kernel package
/// fails here, loudly.
@Suite("VM lane: a real 802.1Q kernel", .enabled(if: RootLane.enabled && !VLANLane.inVM, RootLane.reason), .serialized)
struct VMLaneTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func theVLANSuitesPassInsideTheVM() throws {
        let testBinary = NamespaceFixtures.binaries.appendingPathComponent("vnetPackageTests.xctest").path
        #expect(FileManager.default.isExecutableFile(atPath: testBinary), "\(testBinary) is missing")
        let script = Self.repository.appendingPathComponent("Tests/vm-lane.sh").path
        do {
            let output = String(decoding: try ProcessRunner().run(
                [script, "run", testBinary, "--testing-library", "swift-testing", "--no-parallel", "--filter", "ManagedVLANClusterTests|kernelMethodInsideTheVM"], input: nil), as: UTF8.self)
            #expect(output.contains("Test run with") && output.contains("passed"), "\(output.suffix(3000))")
            #expect(!output.contains("0 tests"), "no VLAN suite ran in the VM:\n\(output.suffix(2000))")
        } catch {
            Issue.record("the VM lane failed (status \(error.status)):\n\(error.stdout.suffix(6000))\n\(error.stderr.suffix(2000))")
        }
    }
}
