import ArgumentParser
import Foundation
import VNetCore
import VNetLinux
import VNetSystem

/// `vnet-bench dhcpd` (root): one instance added to a front end whose dhcpd serves N hosts, timed from the
/// apply's start until a DHCP client on the wire, asking from that moment, is offered the new instance's
/// address (`DHCPProbe`, a DISCOVER every 5 ms, so a client's own backoff is not measured); the apply's own
/// length is shown too. Two ways in the same namespaces and run:
/// - OMAPI (now): the config rewritten and the host sent to the running dhcpd; its pid must not change;
/// - restart (before, and still the path for subnet changes): the config checked with `dhcpd -t`, dhcpd
///   restarted on it; the time includes dhcpd reading its N hosts before it answers.
struct DHCPDBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dhcpd", abstract: "One instance added with N dhcpd hosts: OMAPI against restarting dhcpd, until a client is offered its address (needs root).")

    @Option(help: "Host entries dhcpd already serves.") var hosts = 100_000
    @Option(help: "Instances added per method (the median is shown).") var samples = 5
    @Option(help: "Instances added by each apply (a burst: the time is until the last of them is offered).") var burst = 1
    @Flag(help: "Print one JSON object.") var json = false

    struct Method: Encodable {
        var applySeconds: [Double]
        var offeredSeconds: [Double]
        var medianOfferedSeconds: Double
        var pidUnchanged: Bool
    }

    func run() throws {
        guard getuid() == 0 else { throw ValidationError("needs root (it makes a network namespace)") }
        guard (1...250_000).contains(hosts) else { throw ValidationError("--hosts is 1-250000") }
        guard (1...50).contains(samples) else { throw ValidationError("--samples is 1-50") }
        guard (1...10_000).contains(burst) else { throw ValidationError("--burst is 1-10000") }
        let dhcpd = "/usr/sbin/dhcpd"
        guard FileManager.default.isExecutableFile(atPath: dhcpd) else { throw ValidationError("\(dhcpd) is missing (isc-dhcp-server; deploy/install-deps.sh)") }

        // dhcpd on eth0 in one scratch namespace (its loopback up for OMAPI), the probe on the veth's other end
        // in another (a reply from an address of the probe's own namespace would be dropped as martian).
        let subnet = IPv4Network("10.64.0.0/14")!
        let results = try Namespaces.scratchHost(["link set lo up"]) { client, _ -> [String: Method] in
            guard case .named(let clientNamespace) = client.kernel else { throw ValidationError("the client's namespace has no name") }
            return try Namespaces.scratchHost(["link set lo up", "link add eth0 type veth peer name client0", "link set client0 netns \(clientNamespace)",
                                               "link set eth0 up", "address add 10.67.255.254/14 dev eth0"]) { runner, directory -> [String: Method] in
            _ = try client.run(["ip", "link", "set", "client0", "up"], input: nil)
            var config = DHCPDConfig(sharedNetwork: false, subnets: [.init(network: subnet, router: IPv4Address("10.67.255.254"), broadcast: subnet.broadcast, dns: [])],
                                     hosts: (0..<hosts).map { Self.host($0, in: subnet) }, interfaces: ["eth0"])
            var methods: [String: Method] = [:]
            var next = hosts
            for (name, port) in [("omapi", UInt16(7911)), ("restart", nil)] as [(String, UInt16?)] {
                var settings = DHCPDManager.Settings(directory: "\(directory)/dhcpd-\(name)")
                settings.omapiPort = port
                let manager = DHCPDManager(runner: runner, settings: settings)
                defer { manager.stop() }
                if !json { FileHandle.standardError.write(Data("dhcpd \(name): starting with \(hosts) hosts...\n".utf8)) }
                _ = try manager.apply(config)
                // Served: the last of the N hosts is offered its address.
                guard try DHCPProbe.offer(for: config.hosts.last!.mac, on: "client0", in: client.kernel, timeout: 60) != nil else {
                    throw ValidationError("dhcpd did not answer with its \(hosts) hosts")
                }
                let pid = manager.runningPID
                var apply: [Double] = [], offered: [Double] = []
                for _ in 0..<samples {
                    let batch = (next..<(next + burst)).map { Self.host($0, in: subnet) }
                    next += burst
                    config.hosts += batch
                    let added = batch.last!
                    // The client asks from the moment the apply starts, as a booting instance would.
                    let probe = OfferWatch(mac: added.mac, interface: "client0", kernel: client.kernel)
                    let start = monotonicSeconds()
                    let outcome = try manager.apply(config)
                    apply.append(monotonicSeconds() - start)
                    guard let (offer, at) = try probe.wait(), offer.address == added.address else {
                        throw ValidationError("\(name): the added instance was not offered \(added.address)")
                    }
                    offered.append(at - start)
                    if port != nil, outcome != .hostsChanged(added: burst, removed: 0) { throw ValidationError("omapi: the hosts were not added over OMAPI: \(outcome)") }
                }
                methods[name] = Method(applySeconds: apply, offeredSeconds: offered, medianOfferedSeconds: median(offered), pidUnchanged: manager.runningPID == pid)
                config.hosts.removeLast(samples * burst)
            }
            return methods
            }
        }
        let omapi = results["omapi"]!, restart = results["restart"]!
        let meets = omapi.medianOfferedSeconds < 0.050 && omapi.pidUnchanged
        if json {
            struct Result: Encodable { var hosts: Int; var samples: Int; var burst: Int; var omapi: Method; var restart: Method; var meetsTarget: Bool }
            try printJSON(Result(hosts: hosts, samples: samples, burst: burst, omapi: omapi, restart: restart, meetsTarget: meets))
            return
        }
        print((burst == 1 ? "ONE INSTANCE ADDED" : "\(burst) INSTANCES ADDED AT ONCE") + ", \(hosts) HOSTS    until offered (median of \(samples))   whole apply (median)   dhcpd pid")
        for (name, method) in [("OMAPI (now)", omapi), ("restart (before)", restart)] {
            print(name.padding(toLength: 34, withPad: " ", startingAt: 0) + String(format: "%8.1f ms                  %8.1f ms            %@", method.medianOfferedSeconds * 1000,
                         median(method.applySeconds) * 1000, method.pidUnchanged ? "unchanged" : "changed"))
        }
        print(String(format: "restart / OMAPI: %.2fx", restart.medianOfferedSeconds / max(omapi.medianOfferedSeconds, 1e-6)))
        if burst == 1 {
            print(String(format: "target: under 50 ms until offered, pid unchanged (%.1f ms, %@): %@", omapi.medianOfferedSeconds * 1000,
                         omapi.pidUnchanged ? "unchanged" : "CHANGED", meets ? "MEETS" : "MISSES"))
        }
    }

    /// A `DHCPProbe` on a thread of its own: started before the apply, so the time of the offer is when dhcpd
    /// could first serve the new MAC, whatever the apply still does after that.
    final class OfferWatch: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        private var result: Result<(DHCPReply, Double)?, Error> = .success(nil)

        init(mac: MACAddress, interface: String, kernel: KernelNamespace) {
            let ready = DispatchSemaphore(value: 0)
            Thread.detachNewThread { [self] in
                ready.signal()
                result = Result { try DHCPProbe.offer(for: mac, on: interface, in: kernel, timeout: 60).map { ($0, monotonicSeconds()) } }
                done.signal()
            }
            ready.wait()
        }

        func wait() throws -> (DHCPReply, Double)? {
            done.wait()
            return try result.get()
        }
    }

    /// Host `index` of the benchmark: a MAC and an address of its own in `subnet` (from .1 up).
    static func host(_ index: Int, in subnet: IPv4Network) -> DHCPDConfig.Host {
        DHCPDConfig.Host(mac: MACAddress(0xd00d_0000_0000 | UInt64(index + 1)), address: IPv4Address(subnet.address.value + UInt32(index + 1)))
    }
}
