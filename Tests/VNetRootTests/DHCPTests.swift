import Foundation
import Testing
@testable import VNetCore
import VNetLinux

/// The project's dhcpd handing out a STATIC mapping to a real DHCP client, across two namespaces of the test's
/// own: the front end (dhcpd on eth0) and an instance holding the other end of the wire with its mapped MAC.
@Suite("dhcpd managed by the Linux backend, with a real DHCP client", .enabled(if: RootLane.enabled, RootLane.reason), .serialized)
struct DHCPTests {
    @Test func anInstanceGetsExactlyItsMappedAddressAndDhcpdIsKeptRunning() throws {
        #expect(FileManager.default.isExecutableFile(atPath: "/usr/sbin/dhclient"), "dhclient (isc-dhcp-client) is missing")
        let frontEnd = try ScratchNamespace(), instance = try ScratchNamespace()
        let fe = ProcessRunner(prefix: ["ip", "netns", "exec", frontEnd.name])
        let vm = ProcessRunner(prefix: ["ip", "netns", "exec", instance.name])
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-dhcp-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let mac = MACAddress("d0:0d:00:00:01:05")!
        for command in [["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "vif0"],
                        ["ip", "link", "set", "vif0", "netns", instance.name],
                        ["ip", "link", "set", "eth0", "up"], ["ip", "address", "add", "10.30.1.254/24", "dev", "eth0"]] {
            _ = try fe.run(command, input: nil)
        }
        for command in [["ip", "link", "set", "lo", "up"], ["ip", "link", "set", "vif0", "address", mac.description], ["ip", "link", "set", "vif0", "up"]] {
            _ = try vm.run(command, input: nil)
        }

        var state = HostNetworkState(host: "fe", role: .frontend, mode: .staticMode)
        state.requiredLinks = ["eth0"]
        let subnet = IPv4Network("10.30.1.0/24")!
        state.dhcpd = DHCPDConfig(sharedNetwork: true,
                                  subnets: [.init(network: subnet, router: IPv4Address("10.30.1.1"), broadcast: subnet.broadcast, dns: [IPv4Address("192.0.2.53")!])],
                                  hosts: [.init(mac: mac, address: IPv4Address("10.30.1.5")!)], interfaces: ["eth0"])
        let manager = DHCPDManager(runner: fe, settings: .init(directory: "\(directory)/dhcpd"))
        let backend = LinuxBackend(runner: fe, stateFile: "\(directory)/backend.pb", dhcpd: manager)
        defer { manager.stop() }
        #expect(try backend.apply(state, revision: 1).operations == 1)
        let firstPID = try #require(manager.runningPID)
        #expect(backend.dhcpdState == "running (pid \(firstPID))")

        // The client: its script only writes down what it was given.
        let script = "\(directory)/record.sh", record = "\(directory)/offer"
        try "#!/bin/sh\necho \"$reason $new_ip_address $new_routers\" >> \(record)\n".write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        _ = try vm.run(["timeout", "20", "dhclient", "-4", "-1", "-sf", script, "-pf", "\(directory)/dhclient.pid", "-lf", "\(directory)/dhclient.leases", "vif0"], input: nil)
        defer {
            if let pid = (try? String(contentsOfFile: "\(directory)/dhclient.pid", encoding: .utf8)).flatMap({ Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) {
                kill(pid, SIGTERM)
            }
        }
        let offered = (try? String(contentsOfFile: record, encoding: .utf8)) ?? ""
        #expect(offered.contains("BOUND 10.30.1.5 10.30.1.1"), "dhclient got: \(offered)")

        // Same state again: dhcpd is left alone.
        #expect(try backend.apply(state, revision: 1).operations == 0)
        #expect(manager.runningPID == firstPID)
        // A changed config: validated, swapped in, dhcpd restarted with SIGTERM. The lease file is never deleted
        // or emptied by vnet (dhcpd rewrites it itself on start, keeping the previous one as dhcpd.leases~).
        let leases = "\(directory)/dhcpd/dhcpd.leases"
        state.dhcpd!.hosts.append(.init(mac: MACAddress("d0:0d:00:00:01:06")!, address: IPv4Address("10.30.1.6")!))
        #expect(try backend.apply(state, revision: 2).operations == 1)
        let secondPID = try #require(manager.runningPID)
        #expect(secondPID != firstPID)
        #expect(FileManager.default.fileExists(atPath: leases) && FileManager.default.fileExists(atPath: leases + "~"))
        #expect(try String(contentsOfFile: "\(directory)/dhcpd/dhcpd.conf", encoding: .utf8).contains("fixed-address 10.30.1.6;"))
        // dhcpd killed by hand: the next reconcile starts it again and reports it.
        kill(secondPID, SIGKILL)
        Thread.sleep(forTimeInterval: 0.2)
        #expect(manager.runningPID == nil)
        let report = try backend.apply(state, revision: 2)
        #expect(report.operations == 1)
        #expect(manager.runningPID != nil)
        #expect(report.drift.contains("dhcpd was not running; started it again"))
        // No dhcpd wanted: stopped.
        state.dhcpd = nil
        _ = try backend.apply(state, revision: 3)
        #expect(manager.runningPID == nil)
    }
}
