import Foundation
import Testing
import VNetCore
import VNetHost
import VNetLinux

/// The Linux backend's diff-and-apply against a modelled kernel (FakeKernel): no root, no namespaces, every
/// argument list it runs recorded. The same behaviours are proven on real links in VNetRootTests; here they run
/// in milliseconds on any machine, and the exact commands are visible.
@Suite("Linux backend diff and apply, without root")
struct LinuxDiffTests {
    static let mac = MACAddress("d0:0d:12:34:56:78")!
    static let instance = InstanceID("i-12345678")!

    /// A MANAGED node with one group (VID 10) and `vifs` instance taps in it.
    static func node(vifs: [String] = ["vnet0"], vlan: Int = 10) -> HostNetworkState {
        var state = HostNetworkState(host: "n1", role: .node, mode: .managed)
        state.requiredLinks = ["eth0"]
        state.vlanDevices = [.init(name: "eth0.\(vlan)", parent: "eth0", vlan: vlan)]
        state.bridges = [.init(name: "eucabr\(vlan)", ports: ["eth0.\(vlan)"])]
        state.vifs = vifs.enumerated().map { index, name in
            .init(name: name, bridge: "eucabr\(vlan)", mac: MACAddress(Self.mac.value + UInt64(index)), instance: InstanceID("i-\(String(format: "%08x", 0x1234_5678 + index))")!, createTap: true)
        }
        return state
    }

    static func backend(_ kernel: FakeKernel, stateFile: String? = nil) -> LinuxBackend {
        LinuxBackend(runner: kernel, stateFile: stateFile, interface: "eth0", bridge: "br0")
    }

    @Test func bringUpRunsOneBatchInOrderAndASecondApplyOnlyLooks() throws {
        let kernel = FakeKernel()
        let backend = Self.backend(kernel)
        let report = try backend.apply(Self.node(), revision: 1)
        #expect(report.isComplete && report.operations > 0)
        let first = kernel.snapshot
        #expect(first.batches == [[
            "link add link eth0 name eth0.10 type vlan id 10",
            "link add name eucabr10 type bridge",
            "tuntap add dev vnet0 mode tap",
            "link set dev vnet0 address \(Self.mac.tapHostSide)",
            "link set dev eth0.10 up",
            "link set dev eucabr10 up",
            "link set dev vnet0 up",
            "link set dev eth0.10 master eucabr10",
            "link set dev vnet0 master eucabr10",
        ]], "one batch, in this order: \(first.batches)")
        #expect(first.links["eth0.10"]?.master == "eucabr10" && first.links["vnet0"]?.master == "eucabr10" && first.links["eucabr10"]?.up == true)
        #expect(first.links["eth0.10"]?.vlan == 10 && first.links["eth0.10"]?.parent == "eth0")
        // Every VLAN device exists before it is enslaved, every port before its master takes it.
        let lines = first.batches.flatMap { $0 }
        for (index, line) in lines.enumerated() where line.contains(" master ") {
            let port = line.split(separator: " ")[3]
            #expect(lines[..<index].contains { $0.contains(" name \(port) ") || $0.hasPrefix("tuntap add dev \(port) ") }, "\(port) made before: \(line)")
        }
        let again = try backend.apply(Self.node(), revision: 2)
        #expect(again.operations == 0 && again.isComplete)
        let second = kernel.snapshot
        #expect(second.batches.count == 1, "no batch when the host already matches")
        #expect(second.calls.dropFirst(first.calls.count).allSatisfy { $0.starts(with: ["ip", "-json"]) }, "only looks: \(second.calls.dropFirst(first.calls.count))")
    }

    @Test func theOperatorsVLANDeviceAndItsAddressAreNeverTouched() throws {
        let kernel = FakeKernel()
        kernel.mutate { kernel in
            kernel.add("eth0.100", .init(index: 0, kind: "vlan", up: true, vlan: 100, parent: "eth0", mac: "52:54:00:00:00:01"))
            kernel.addAddress(.init(device: "eth0.100", cidr: "192.0.2.10/24", broadcast: "192.0.2.255"))
        }
        let backend = Self.backend(kernel)
        _ = try backend.apply(Self.node(), revision: 1)
        _ = try backend.apply(Self.node(vifs: []), revision: 2)  // vnet's own objects change; the operator's do not
        let state = kernel.snapshot
        #expect(state.links["eth0.100"] != nil && state.addresses.contains(.init(device: "eth0.100", cidr: "192.0.2.10/24", broadcast: "192.0.2.255")))
        #expect(!state.batches.flatMap { $0 }.contains { $0.contains("eth0.100") }, "no line names the operator's device")
        #expect(state.links["vnet0"] == nil, "vnet's tap went with its instance")
    }

    @Test func aDesiredNameTheOperatorHasIsAConflictAndTheRestIsApplied() throws {
        let kernel = FakeKernel()
        kernel.mutate { $0.add("eucabr10", .init(index: 0, kind: "bridge", up: true, mac: "52:54:00:00:00:09")) }
        let report = try Self.backend(kernel).apply(Self.node(), revision: 1)
        #expect(report.failures.map(\.kind).contains(.conflict), "\(report.failures)")
        #expect(report.failures.contains { $0.object.contains("eucabr10") })
        #expect(!kernel.snapshot.batches.flatMap { $0 }.contains { $0.hasPrefix("link add name eucabr10") || $0.hasPrefix("link del dev eucabr10") })
    }

    @Test func aVifTheHypervisorHasNotMadeIsMissingAloneAndAttachedWhenItAppears() throws {
        let kernel = FakeKernel()
        var state = Self.node(vifs: ["vnet0", "vnet1"])
        state.vifs[1].createTap = false  // the hypervisor makes it
        let backend = Self.backend(kernel)
        let report = try backend.apply(state, revision: 1)
        #expect(report.failures.map(\.kind) == [.missing] && report.failures.first?.instance == state.vifs[1].instance)
        #expect(kernel.snapshot.links["vnet0"]?.master == "eucabr10", "the other instance is applied")
        kernel.mutate { $0.add("vnet1", .init(index: 0, kind: "tun", mac: "fe:0d:12:34:56:79")) }
        let retry = try backend.apply(state, revision: 1)
        #expect(retry.isComplete && kernel.snapshot.links["vnet1"]?.master == "eucabr10")
    }

    @Test func aLineTheKernelRefusesIsItsObjectsFailureAndTheBatchGoesOn() throws {
        let kernel = FakeKernel()
        // VID 4095 is reserved: the kernel (here its model) refuses the device; nothing before it says so.
        var state = Self.node(vifs: ["vnet0"])
        state.vlanDevices.append(.init(name: "eth0.4095", parent: "eth0", vlan: 4095))
        state.bridges.append(.init(name: "eucabr4095", ports: ["eth0.4095"]))
        let report = try Self.backend(kernel).apply(state, revision: 1)
        #expect(!report.isComplete && report.failures.contains { $0.object.contains("eth0.4095") }, "\(report.failures)")
        #expect(kernel.snapshot.links["vnet0"]?.master == "eucabr10", "the rest of the batch ran")
        #expect(kernel.snapshot.calls.contains(["ip", "-force", "-batch", "-"]), "applied with -force, so one refused line does not stop the rest")
    }

    @Test func driftIsPutBackAndSaidAndAStartWithoutTheUplinkChangesNothing() throws {
        let kernel = FakeKernel()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-diff-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let backend = Self.backend(kernel, stateFile: "\(directory)/linux-backend.pb")
        _ = try backend.apply(Self.node(), revision: 1)
        kernel.mutate { $0.removeLink("eucabr10") }
        let repaired = try backend.apply(Self.node(), revision: 1)
        #expect(!repaired.drift.isEmpty && repaired.isComplete, "\(repaired)")
        #expect(kernel.snapshot.links["eucabr10"] != nil && kernel.snapshot.links["vnet0"]?.master == "eucabr10")
        // A restarted backend (its record read back) owns what it made: removing the instance removes the tap.
        let restarted = Self.backend(kernel, stateFile: "\(directory)/linux-backend.pb")
        _ = try restarted.apply(Self.node(vifs: []), revision: 2)
        #expect(kernel.snapshot.links["vnet0"] == nil)
        // No uplink: refused whole, nothing run.
        let bare = FakeKernel(devices: ["lo"])
        #expect(throws: (any Error).self) { try Self.backend(bare).apply(Self.node(), revision: 1) }
        #expect(bare.snapshot.batches.isEmpty)
    }

    @Test func commandsOutsideTheModelAreRefusedNotAccepted() {
        let kernel = FakeKernel()
        #expect(throws: CommandError.self) { try kernel.run(["iptables", "-S"], input: nil) }
        #expect(throws: CommandError.self) { try kernel.run(["ip", "-batch", "-"], input: Array("route add default via 192.0.2.1\n".utf8)) }
    }
}
