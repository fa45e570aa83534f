import Foundation
import Testing
@testable import VNetCore
@testable import VNetLinux

/// The project's dhcpd handing out a STATIC mapping to a real DHCP client, across two namespaces of the test's
/// own: the front end (dhcpd on eth0) and an instance holding the other end of the wire with its mapped MAC.
/// Instances coming and going reach the running dhcpd over OMAPI (its pid stays); a change of subnet options
/// restarts it; a dhcpd killed by hand is started again and serves every instance from its config.
@Suite("dhcpd managed by the Linux backend, with a real DHCP client", .enabled(if: RootLane.enabled, RootLane.reason), .serialized)
struct DHCPTests {
    final class Fixture {
        let frontEnd: ScratchNamespace, instance: ScratchNamespace
        let fe: ProcessRunner, vm: ProcessRunner
        let directory: String
        init() throws {
            frontEnd = try ScratchNamespace(); instance = try ScratchNamespace()
            fe = ProcessRunner(prefix: ["ip", "netns", "exec", frontEnd.name])
            vm = ProcessRunner(prefix: ["ip", "netns", "exec", instance.name])
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("vnet-dhcp-\(UUID().uuidString.prefix(8))").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for command in [["ip", "link", "set", "lo", "up"], ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "vif0"],
                            ["ip", "link", "set", "vif0", "netns", instance.name],
                            ["ip", "link", "set", "eth0", "up"], ["ip", "address", "add", "10.30.1.254/24", "dev", "eth0"]] {
                _ = try fe.run(command, input: nil)
            }
            for command in [["ip", "link", "set", "lo", "up"], ["ip", "link", "set", "vif0", "up"]] { _ = try vm.run(command, input: nil) }
        }
        deinit { try? FileManager.default.removeItem(atPath: directory) }

        /// What a real dhclient on the instance's wire, with `mac`, is given: "BOUND address router", or "" when
        /// nothing answered within `seconds`.
        func lease(for mac: MACAddress, seconds: Int = 20) throws -> String {
            _ = try vm.run(["ip", "link", "set", "vif0", "address", mac.description], input: nil)
            let tag = UUID().uuidString.prefix(8)
            let script = "\(directory)/record-\(tag).sh", record = "\(directory)/offer-\(tag)", pidFile = "\(directory)/dhclient-\(tag).pid"
            try "#!/bin/sh\n[ \"$reason\" = BOUND ] && echo \"$reason $new_ip_address $new_routers\" >> \(record)\nexit 0\n".write(toFile: script, atomically: true, encoding: .utf8)
            chmod(script, 0o755)
            _ = try? vm.run(["timeout", "\(seconds)", "dhclient", "-4", "-1", "-sf", script, "-pf", pidFile, "-lf", "\(directory)/dhclient-\(tag).leases", "vif0"], input: nil)
            if let pid = (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap({ Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) {
                kill(pid, SIGTERM)
            }
            return ((try? String(contentsOfFile: record, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    static func state() -> HostNetworkState {
        var state = HostNetworkState(host: "fe", role: .frontend, mode: .staticMode)
        state.requiredLinks = ["eth0"]
        let subnet = IPv4Network("10.30.1.0/24")!
        state.dhcpd = DHCPDConfig(sharedNetwork: true,
                                  subnets: [.init(network: subnet, router: IPv4Address("10.30.1.1"), broadcast: subnet.broadcast, dns: [IPv4Address("192.0.2.53")!])],
                                  hosts: [.init(mac: MACAddress("d0:0d:00:00:01:05")!, address: IPv4Address("10.30.1.5")!)], interfaces: ["eth0"])
        return state
    }

    @Test func instancesComeAndGoWithoutRestartingDhcpdAndARestartedOneServesThemAll() throws {
        #expect(FileManager.default.isExecutableFile(atPath: "/usr/sbin/dhclient"), "dhclient (isc-dhcp-client) is missing")
        let fixture = try Fixture()
        let directory = fixture.directory
        var state = Self.state()
        let first = MACAddress("d0:0d:00:00:01:05")!, second = MACAddress("d0:0d:00:00:01:06")!
        let manager = DHCPDManager(runner: fixture.fe, settings: .init(directory: "\(directory)/dhcpd"))
        let backend = LinuxBackend(runner: fixture.fe, stateFile: "\(directory)/backend.pb", dhcpd: manager)
        defer { manager.stop() }
        #expect(try backend.apply(state, revision: 1).operations == 1)
        let pid = try #require(manager.runningPID)
        #expect(backend.dhcpdState == "running (pid \(pid))")
        #expect(try fixture.lease(for: first) == "BOUND 10.30.1.5 10.30.1.1")
        // The key and the config holding it are the agent's alone.
        for file in ["omapi.key", "dhcpd.conf"] {
            let mode = try FileManager.default.attributesOfItem(atPath: "\(directory)/dhcpd/\(file)")[.posixPermissions] as? Int
            #expect(mode == 0o600, "\(file) is mode \(String(mode ?? 0, radix: 8))")
        }

        // Same state again: dhcpd is left alone.
        #expect(try backend.apply(state, revision: 1).operations == 0)
        // A new instance: over OMAPI, the pid unchanged, a real client gets its address, and the config has it.
        state.dhcpd!.hosts.append(.init(mac: second, address: IPv4Address("10.30.1.6")!))
        var report = try backend.apply(state, revision: 2)
        #expect(report.operations == 1 && report.isComplete && report.notes.isEmpty, "\(report)")
        #expect(manager.runningPID == pid && manager.restarts == 1 && manager.hostChanges == 1)
        #expect(try fixture.lease(for: second) == "BOUND 10.30.1.6 10.30.1.1")
        #expect(manager.runningPID == pid)
        let conf = "\(directory)/dhcpd/dhcpd.conf"
        #expect(try String(contentsOfFile: conf, encoding: .utf8).contains("fixed-address 10.30.1.6;"))

        // The first instance gone, and its address given to another MAC: dhcpd forgets the old host (asked
        // over OMAPI itself) and serves the new one, still without a restart.
        let third = MACAddress("d0:0d:00:00:01:07")!
        state.dhcpd!.hosts = [.init(mac: third, address: IPv4Address("10.30.1.5")!), .init(mac: second, address: IPv4Address("10.30.1.6")!)]
        report = try backend.apply(state, revision: 3)
        #expect(report.operations == 1 && report.notes.isEmpty, "\(report)")
        #expect(manager.runningPID == pid && manager.restarts == 1 && manager.hostChanges == 3)
        let secret = Array(try #require(FileManager.default.contents(atPath: "\(directory)/dhcpd/omapi.key")))
        let client = try OMAPIClient(port: 7911, secret: secret, in: fixture.fe.kernel)
        #expect(try client.host(named: "node-10.30.1.5") == .init(mac: third, address: IPv4Address("10.30.1.5")!))
        #expect(try fixture.lease(for: third) == "BOUND 10.30.1.5 10.30.1.1")

        // dhcpd killed by hand: the next reconcile starts it again from its config, and it serves every
        // instance, including the ones it was given over OMAPI (and not the host they replaced).
        kill(pid, SIGKILL)
        for _ in 0..<100 where manager.runningPID != nil { Thread.sleep(forTimeInterval: 0.02) }
        #expect(manager.runningPID == nil)
        report = try backend.apply(state, revision: 3)
        #expect(report.operations == 1)
        #expect(report.drift.contains("dhcpd was not running; started it again"))
        let restarted = try #require(manager.runningPID)
        let leases = try String(contentsOfFile: "\(directory)/dhcpd/dhcpd.leases", encoding: .utf8)
        #expect(!leases.contains("host node-"), "the hosts dhcpd recorded for OMAPI are not replayed over the config: \(leases)")
        #expect(try fixture.lease(for: second) == "BOUND 10.30.1.6 10.30.1.1")
        #expect(try fixture.lease(for: third) == "BOUND 10.30.1.5 10.30.1.1")
        #expect(try fixture.lease(for: first, seconds: 6) == "", "the removed instance's MAC gets nothing")

        // A changed subnet option is not a host change: validated, swapped in, dhcpd restarted with SIGTERM.
        // The lease file is kept (dhcpd rewrites it itself on start, keeping the previous one as dhcpd.leases~).
        state.dhcpd!.subnets[0].dns = [IPv4Address("192.0.2.54")!]
        #expect(try backend.apply(state, revision: 4).operations == 1)
        let again = try #require(manager.runningPID)
        #expect(again != restarted && manager.restarts == 3)
        #expect(FileManager.default.fileExists(atPath: "\(directory)/dhcpd/dhcpd.leases~"))
        #expect(try String(contentsOfFile: conf, encoding: .utf8).contains("option domain-name-servers 192.0.2.54;"))
        // No dhcpd wanted: stopped.
        state.dhcpd = nil
        _ = try backend.apply(state, revision: 5)
        #expect(manager.runningPID == nil)
    }

    /// A restarted agent finds dhcpd running on the config it wrote and goes on over OMAPI; an OMAPI exchange
    /// that cannot happen falls back to a restart, and says why.
    @Test func aRestartedAgentKeepsDhcpdAndAFailedOMAPIExchangeRestartsIt() throws {
        let fixture = try Fixture()
        var state = Self.state()
        let settings = DHCPDManager.Settings(directory: "\(fixture.directory)/dhcpd")
        let manager = DHCPDManager(runner: fixture.fe, settings: settings)
        defer { manager.stop() }
        #expect(try LinuxBackend(runner: fixture.fe, stateFile: "\(fixture.directory)/backend.pb", dhcpd: manager).apply(state, revision: 1).operations == 1)
        let pid = try #require(manager.runningPID)

        let restartedAgent = DHCPDManager(runner: fixture.fe, settings: settings)
        state.dhcpd!.hosts.append(.init(mac: MACAddress("d0:0d:00:00:01:06")!, address: IPv4Address("10.30.1.6")!))
        #expect(try restartedAgent.apply(state.dhcpd!) == .hostsChanged(added: 1, removed: 0))
        #expect(restartedAgent.runningPID == pid && restartedAgent.restarts == 0)
        #expect(try fixture.lease(for: MACAddress("d0:0d:00:00:01:06")!) == "BOUND 10.30.1.6 10.30.1.1")

        // OMAPI out of reach (the namespace's loopback down): the host change restarts dhcpd instead, and the
        // instance is served all the same.
        _ = try fixture.fe.run(["ip", "link", "set", "lo", "down"], input: nil)
        state.dhcpd!.hosts.append(.init(mac: MACAddress("d0:0d:00:00:01:07")!, address: IPv4Address("10.30.1.7")!))
        guard case .started(let failure?) = try restartedAgent.apply(state.dhcpd!) else {
            Issue.record("a host change OMAPI could not carry did not restart dhcpd"); return
        }
        #expect(failure.contains("OMAPI: cannot connect to dhcpd on 127.0.0.1:7911"), "\(failure)")
        #expect(restartedAgent.runningPID != pid && restartedAgent.restarts == 1)
        #expect(try fixture.lease(for: MACAddress("d0:0d:00:00:01:07")!) == "BOUND 10.30.1.7 10.30.1.1")

        // A new key (the file replaced): it is in the config, so dhcpd is restarted on it.
        _ = try fixture.fe.run(["ip", "link", "set", "lo", "up"], input: nil)
        let key = "\(fixture.directory)/dhcpd/omapi.key"
        try Data((0..<32).map { _ in UInt8.random(in: 0...255) }).write(to: URL(fileURLWithPath: key))
        #expect(try restartedAgent.apply(state.dhcpd!) == .started(omapiFailure: nil))
        state.dhcpd!.hosts.removeFirst()
        #expect(try restartedAgent.apply(state.dhcpd!) == .hostsChanged(added: 0, removed: 1), "and OMAPI works on the new key")
    }

    /// dhcpd itself refuses a request signed with a key that is not its own, and changes nothing: first sent by
    /// hand (a bare connection, the session's bytes, no client checks in between), then through the agent's client.
    @Test func dhcpdRefusesARequestSignedWithAnotherKey() throws {
        let fixture = try Fixture()
        let manager = DHCPDManager(runner: fixture.fe, settings: .init(directory: "\(fixture.directory)/dhcpd"))
        defer { manager.stop() }
        var state = Self.state()
        _ = try manager.apply(state.dhcpd!)
        let secret = Array(try #require(FileManager.default.contents(atPath: "\(fixture.directory)/dhcpd/omapi.key")))

        let wrong = secret.map { $0 ^ 0x01 }
        let connection = try OMAPIConnection(port: 7911, in: fixture.fe.kernel)
        var session = OMAPISession(secret: wrong)
        #expect(connection.peerIntroduction == OMAPIMessage.introduction)
        let open = session.openAuthenticator()
        try connection.send(open.bytes)
        let opened = try connection.receive()
        #expect(opened.opcode == .update && opened.handle != 0, "the key's name and algorithm are dhcpd's: the authenticator opens")
        try session.authenticated(by: opened, to: open.id)
        let host = DHCPDConfig.Host(mac: MACAddress("d0:0d:00:00:01:09")!, address: IPv4Address("10.30.1.9")!)
        let create = session.createHost(host)
        try connection.send(create.bytes)
        let answer = try connection.receive()
        #expect(answer.opcode == .status && OMAPIMessage.integer(answer.value("result")) != 0, "refused: \(answer)")
        #expect(throws: OMAPISession.Failure.self) { try session.answer(answer, to: create.id) }

        // Nothing changed: the right key finds no such host, and the agent's own client, given the wrong key,
        // is refused the same way.
        let client = try OMAPIClient(port: 7911, secret: secret, in: fixture.fe.kernel)
        #expect(try client.host(named: host.declarationName) == nil)
        let misled = try OMAPIClient(port: 7911, secret: wrong, in: fixture.fe.kernel)
        #expect(throws: OMAPISession.Failure.self) { try misled.put(host) }
        #expect(try client.host(named: host.declarationName) == nil)
        state.dhcpd!.hosts.append(host)
        #expect(try manager.apply(state.dhcpd!) == .hostsChanged(added: 1, removed: 0))
        #expect(try client.host(named: host.declarationName) == host)
    }
}

/// An operator's own dhcpd already holding OMAPI's port, with its own key: the agent's client is refused
/// before it can ask anything, and says what is going on.
@Suite("OMAPI's port held by another dhcpd", .enabled(if: RootLane.enabled, RootLane.reason))
struct ForeignOMAPITests {
    @Test func anotherDhcpdsOMAPIIsNamedAndNeverActedOn() throws {
        let fixture = try DHCPTests.Fixture()
        let foreign = "\(fixture.directory)/foreign"
        try FileManager.default.createDirectory(atPath: foreign, withIntermediateDirectories: true)
        try """
            key operators-key { algorithm hmac-sha256; secret "b3BlcmF0b3JzIG93biBrZXkgb2YgdGhpcnR5LXR3byBieXRlcw=="; }
            omapi-port 7911;
            omapi-key operators-key;
            subnet 10.30.1.0 netmask 255.255.255.0 { }

            """.write(toFile: "\(foreign)/dhcpd.conf", atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: "\(foreign)/dhcpd.leases", contents: nil)
        _ = try fixture.fe.run(["/usr/sbin/dhcpd", "-q", "-cf", "\(foreign)/dhcpd.conf", "-lf", "\(foreign)/dhcpd.leases", "-pf", "\(foreign)/dhcpd.pid", "eth0"], input: nil)
        defer {
            if let pid = (try? String(contentsOfFile: "\(foreign)/dhcpd.pid", encoding: .utf8)).flatMap({ Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) { kill(pid, SIGTERM) }
        }
        var message = ""
        for _ in 0..<50 {
            do { _ = try OMAPIClient(port: 7911, secret: Array(repeating: 7, count: 32), in: fixture.fe.kernel); message = "connected" }
            catch { message = "\(error)" }
            if !message.contains("cannot connect") { break }
            Thread.sleep(forTimeInterval: 0.05)  // until the foreign dhcpd listens
        }
        #expect(message.contains("does not know vnet's key vnet-omapi") && message.contains("another --dhcpd-omapi-port"), "\(message)")
    }
}

/// `vnet-bench dhcpd` (BENCHMARKS.md) kept working: a short run, its two methods as the figures say.
@Suite("vnet-bench dhcpd (short run)", .enabled(if: RootLane.enabled, RootLane.reason))
struct DHCPDBenchmarkTests {
    @Test func bothMethodsServeTheNewInstanceAndOnlyTheRestartChangesThePid() throws {
        let bench = NamespaceFixtures.binaries.appendingPathComponent("vnet-bench").path
        let output = try ProcessRunner().run([bench, "dhcpd", "--hosts", "500", "--samples", "2", "--json"], input: nil)
        struct Method: Decodable { var offeredSeconds: [Double]; var pidUnchanged: Bool }
        struct Result: Decodable { var hosts: Int; var omapi: Method; var restart: Method }
        let result = try JSONDecoder().decode(Result.self, from: Data(output))
        #expect(result.hosts == 500 && result.omapi.offeredSeconds.count == 2 && result.restart.offeredSeconds.count == 2)
        #expect(result.omapi.pidUnchanged && !result.restart.pidUnchanged)
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
