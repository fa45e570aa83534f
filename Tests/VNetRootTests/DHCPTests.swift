import Foundation
import Testing
@testable import VNetCore
@testable import VNetLinux

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
        for _ in 0..<100 where manager.runningPID != nil { Thread.sleep(forTimeInterval: 0.02) }
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

/// VNET_DHCPUSER and VNET_DHCPDAEMON as an operator sets them: dhcpd dropped to a real unprivileged user whose
/// group is not named like it, a user that does not exist named as the error, and a wrapper script (the document
/// recommends one for other DHCP servers) recognised as running by its pid file instead of restarted on every
/// reconcile.
@Suite("dhcpd's user and daemon as eucalyptus.conf gives them", .enabled(if: RootLane.enabled, RootLane.reason), .serialized)
struct DHCPDSettingsTests {
    final class Fixture {
        let frontEnd: ScratchNamespace
        let runner: ProcessRunner
        let directory: String
        var state: HostNetworkState
        init() throws {
            frontEnd = try ScratchNamespace()
            runner = ProcessRunner(prefix: ["ip", "netns", "exec", frontEnd.name])
            directory = "/tmp/vnet-dhcpd-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for command in [["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "vif0"], ["ip", "link", "set", "eth0", "up"],
                            ["ip", "address", "add", "10.30.1.254/24", "dev", "eth0"]] {
                _ = try runner.run(command, input: nil)
            }
            state = HostNetworkState(host: "fe", role: .frontend, mode: .staticMode)
            state.requiredLinks = ["eth0"]
            let subnet = IPv4Network("10.30.1.0/24")!
            state.dhcpd = DHCPDConfig(sharedNetwork: true, subnets: [.init(network: subnet, router: IPv4Address("10.30.1.1"), broadcast: subnet.broadcast, dns: [])],
                                      hosts: [], interfaces: ["eth0"])
        }
        deinit { try? FileManager.default.removeItem(atPath: directory) }
        func manager(_ settings: (inout DHCPDManager.Settings) -> Void) -> DHCPDManager {
            var values = DHCPDManager.Settings(directory: "\(directory)/dhcpd")
            settings(&values)
            return DHCPDManager(runner: runner, settings: values)
        }
        func backend(_ manager: DHCPDManager) -> LinuxBackend { LinuxBackend(runner: runner, stateFile: "\(directory)/backend.pb", dhcpd: manager) }
    }

    static func sh(_ arguments: [String]) throws { _ = try ProcessRunner().run(arguments, input: nil) }

    @Test func dhcpdRunsAsTheUserAndWhatItWritesIsTheUsers() throws {
        let fixture = try Fixture()
        let user = "vnetdhcp\(UInt16.random(in: 1000...9999))", group = user + "g"
        try Self.sh(["groupadd", "--system", group])
        try Self.sh(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--gid", group, user])
        defer { _ = try? Self.sh(["userdel", user]); _ = try? Self.sh(["groupdel", group]) }
        let manager = fixture.manager { $0.user = user }
        defer { manager.stop() }
        let report = try fixture.backend(manager).apply(fixture.state, revision: 1)
        #expect(report.isComplete && report.operations == 1, "\(report)")
        let pid = try #require(manager.runningPID)
        // Give dhcpd a moment to drop its privileges (it does so after opening its sockets).
        var uid = ""
        for _ in 0..<50 {
            let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
            uid = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }.map { String($0.split(separator: "\t")[1]) } ?? ""
            if uid != "0" { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        let expected = try #require(getpwnam(user)).pointee
        #expect(uid == String(expected.pw_uid), "dhcpd runs as \(user)")
        let leases = try FileManager.default.attributesOfItem(atPath: "\(fixture.directory)/dhcpd/dhcpd.leases")
        #expect((leases[.ownerAccountID] as? NSNumber)?.uint32Value == expected.pw_uid, "its leases are its own")
        #expect((leases[.groupOwnerAccountID] as? NSNumber)?.uint32Value == expected.pw_gid, "and its group's (\(group), not \(user))")
    }

    @Test func aUserThatDoesNotExistIsNamedAndNothingElseFails() throws {
        let fixture = try Fixture()
        let manager = fixture.manager { $0.user = "nosuchvnetuser" }
        defer { manager.stop() }
        let report = try fixture.backend(manager).apply(fixture.state, revision: 1)
        #expect(report.failures.map(\.object) == ["dhcpd"], "\(report)")
        #expect(report.failures.first?.error.contains("VNET_DHCPUSER 'nosuchvnetuser' is not a user on this host") == true, "\(report)")
        #expect(manager.runningPID == nil)
    }

    @Test func aWrapperScriptIsSeenRunningByItsPidFile() throws {
        let fixture = try Fixture()
        // A wrapper as operators write them for another server: it stays in front of the daemon it runs and
        // names itself in the pid file (here the server it runs is ISC dhcpd, in the foreground, with no pid file
        // of its own). A config test (-t) is passed through.
        let wrapper = "\(fixture.directory)/dhcp-wrapper"
        try """
            #!/bin/sh
            case " $* " in *" -t "*) exec /usr/sbin/dhcpd "$@";; esac
            pf=""; prev=""
            for arg in "$@"; do [ "$prev" = "-pf" ] && pf="$arg"; prev="$arg"; done
            setsid sh -c 'echo $$ > "$0"; /usr/sbin/dhcpd -f -q --no-pid "$@" & child=$!; trap "kill $child" TERM; wait $child' "$pf" "$@" </dev/null >/dev/null 2>&1 &
            for i in 1 2 3 4 5 6 7 8 9 10; do [ -s "$pf" ] && exit 0; sleep 0.1; done
            exit 1

            """.write(toFile: wrapper, atomically: true, encoding: .utf8)
        chmod(wrapper, 0o755)
        let manager = fixture.manager { $0.daemon = wrapper }
        defer { manager.stop() }
        let backend = fixture.backend(manager)
        var report = try backend.apply(fixture.state, revision: 1)
        #expect(report.isComplete && report.operations == 1, "\(report)")
        let pid = try #require(manager.runningPID, "the wrapper named in the pid file is seen running")
        #expect(DHCPDManager.command(pid) == "sh", "the pid file names the wrapper, not a dhcpd")
        for _ in 0..<3 {
            report = try backend.apply(fixture.state, revision: 1)
            #expect(report.operations == 0 && report.drift.isEmpty, "not restarted on every reconcile: \(report)")
        }
        #expect(manager.restarts == 1 && manager.runningPID == pid)
    }
}
