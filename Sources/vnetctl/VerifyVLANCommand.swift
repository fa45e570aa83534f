import ArgumentParser
import Foundation
import VNetCore
import VNetProto

/// `vnetctl verify-vlan [--vlans 10,20-30 | --managed | --range] [--nodes A,B] [--no-frontend] [--count N] [--probe-time S]
/// [--mtu [--expect-mtu N]] [--dhcp]`:
/// every chosen host probes every other with tagged frames (no VLAN device, no address: nothing on the hosts
/// changes), and a matrix per VID says OK, one-way or failed, with round trips; the untagged control round tells
/// a dead link from a switch that drops tags; the likely culprit of a VID is named. Exit 1 when anything failed.
struct VerifyVLANCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "verify-vlan", abstract: "Check that tagged frames pass between every pair of hosts.")
    @Option(help: "VIDs, like 10,20-30.") var vlans: String?
    @Flag(help: "The VLANs of the active groups (MANAGED).") var managed = false
    @Flag(help: "Every VID of VNET_VLANRANGE the subnet reaches (MANAGED): whether the switches trunk the whole range, before any group uses it.")
    var range = false
    @Option(help: "Nodes taking part, comma-separated (default: every node).") var nodes: String?
    @Flag(inversion: .prefixedNo, help: "Whether the front end takes part (it carries every VLAN, so it is the reference every node is checked against; default: it does).")
    var frontend = true
    @Option(help: "Probes per peer and VID.") var count = 3
    @Option(name: .customLong("probe-time"), help: "Seconds the hosts probe and answer at most (each ends sooner once every peer has answered it and heard it on every VID).") var probeTime = 3.0
    @Option(help: "raw (tagged frames on packet sockets, changes nothing; the default) or kernel (the document's manual check: <iface>.<vid> devices with test addresses, ping, removed again; needs 802.1Q).")
    var method = VLANProbeMethod.raw
    @Flag(help: "Also find the largest frame each direction carries on each VID (padded probes), against each host's interface MTU and the expected MTU.")
    var mtu = false
    @Option(name: .customLong("expect-mtu"), help: "The MTU every path should carry (default: VNET_MTU, else the front end's interface MTU).")
    var expectMTU: Int?
    @Flag(help: "Also ask for DHCP offers on each VID (a made-up client, never accepted) and name every server other than the front end's dhcpd.")
    var dhcp = false
    @OptionGroup var bus: BusOptions

    func validate() throws {
        guard [vlans != nil, managed, range].filter({ $0 }).count == 1 else { throw ValidationError("give one of --vlans LIST, --managed or --range") }
        if let vlans { do { _ = try VLANList.parse(vlans) } catch { throw ValidationError("--vlans: \(error.message)") } }
        guard (1...100).contains(count), probeTime >= 1, probeTime <= 60 else { throw ValidationError("--count 1-100, --probe-time 1-60 s") }
        if dhcp, probeTime < 3 {
            throw ValidationError("--dhcp listens 2.5 s for offers (ISC dhcpd waits a second before it offers): --probe-time 3 or more")
        }
        if mtu, method == .kernel { throw ValidationError("--mtu needs the raw method (padded frames); the kernel method pings through devices") }
        if let expectMTU {
            guard mtu else { throw ValidationError("--expect-mtu goes with --mtu") }
            guard VNetConfig.mtuRange.contains(expectMTU) else { throw ValidationError("--expect-mtu: an MTU is \(VNetConfig.mtuRange.lowerBound)-\(VNetConfig.mtuRange.upperBound) bytes") }
        }
    }

    func run() throws {
        var request = Vnet_V1_VerifyVlan()
        request.vlans = try vlans.map { try VLANList.parse($0).map(UInt32.init) } ?? []
        request.managed = managed
        request.range = range
        request.nodes = nodes?.split(separator: ",").map(String.init) ?? []
        request.frontend = frontend
        request.count = UInt32(count)
        request.timeoutMs = UInt32(probeTime * 1000)
        request.method = method.wire
        request.mtu = mtu
        request.expectedMtu = UInt32(expectMTU ?? 0)
        request.dhcp = dhcp
        if !bus.json { FileHandle.standardError.write(Data("verify-vlan: probing for up to \(probeTime) s (after 0.5 s for every host to listen; a clean fleet is done sooner)...\n".utf8)) }
        var options = bus
        options.timeout = max(bus.timeout, probeTime + 10)
        let reply = try options.call(.verifyVlan(request))
        let result = reply.verification
        let ports = Self.ports(result)
        let mtuFindings = mtu ? Self.mtuFindings(result, ports: ports) : []
        let servers = Self.servers(result)
        let dhcpFindings = dhcp ? RogueDHCP.findings(servers, hosts: result.hosts.filter { !result.unreachable.contains($0) }) : []
        let failed = result.pairs.contains { $0.status != "ok" } || !mtuFindings.isEmpty || servers.contains(where: \.rogue)
        let advice = VLANVerification.advice(pairs: result.pairs.filter { $0.status != "unreachable" }.map { (Int($0.vlan), $0.status == "ok") },
                                             method: method)
        let conclusions = VLANVerification.conclusions(hosts: result.hosts, vlans: result.vlans.map(Int.init), pairs: result.pairs.map(Self.pair),
                                                       culprits: Dictionary(result.culprits.map { (Int($0.vlan), $0.host) }, uniquingKeysWith: { a, _ in a }),
                                                       unreachable: Set(result.unreachable), control: method != .kernel, ports: ports)
        if bus.json {
            try Output.json(VerificationView(result, problems: reply.error, conclusions: conclusions, advice: advice,
                                             mtu: mtu ? MTUView(result, findings: mtuFindings) : nil,
                                             dhcp: dhcp ? DHCPView(servers: servers, findings: dhcpFindings) : nil))
        } else {
            Output.text(Self.render(result) + Self.renderPorts(ports) + (mtu ? Self.renderMTU(result, findings: mtuFindings) : "")
                        + (dhcp ? Self.renderDHCP(servers, findings: dhcpFindings) : "")
                        + conclusions.map { "conclusion: \($0)\n" }.joined() + advice.map { "note: \($0)\n" }.joined()
                        + (reply.error.isEmpty ? "" : "problems: \(reply.error)\n"))
        }
        if failed { throw CommandFailure(code: 1, message: "") }
    }

    /// A pair as the reply carries it, back in the judgement's terms.
    static func pair(_ wire: Vnet_V1_VlanPair) -> VLANVerification.Pair {
        let status: VLANVerification.Status = switch wire.status {
        case "ok": .ok
        case "one-way": .oneWay(from: wire.from, to: wire.to)
        case "unreachable": .unreachable(wire.a)
        default: .failed
        }
        return VLANVerification.Pair(a: wire.a, b: wire.b, vlan: Int(wire.vlan), status: status)
    }

    static func servers(_ result: Vnet_V1_VlanVerification) -> [RogueDHCP.Server] {
        result.dhcpServers.map {
            RogueDHCP.Server(vlan: Int($0.vlan), mac: MACAddress($0.mac), ip: IPv4Address($0.ip), identifier: $0.identifier == 0 ? nil : IPv4Address($0.identifier),
                             seenBy: $0.seenBy, answeredProbe: $0.answeredProbe, allowed: $0.allowed, instanceNetwork: $0.instanceNetwork)
        }
    }

    /// Every DHCP server seen, per VID, then one line per server that is not the front end's.
    static func renderDHCP(_ servers: [RogueDHCP.Server], findings: [String]) -> String {
        guard !servers.isEmpty else { return "DHCP: no server answered on any VID\n" }
        var rows = [["VID", "SERVER MAC", "ADDRESS", "SEEN BY", "WHAT"]]
        for server in servers {
            let what = server.allowed ? "the front end's" : server.rogue ? "ROGUE" : "other (not an instance network)"
            rows.append([server.vlan == 0 ? "untagged" : String(server.vlan), server.mac.description, (server.identifier ?? server.ip).description,
                         server.seenBy.joined(separator: ","), what])
        }
        return "DHCP servers:\n" + table(rows) + findings.map { "dhcp: \($0)\n" }.joined()
    }

    static func paths(_ result: Vnet_V1_VlanVerification) -> [MTUVerification.Path] {
        result.mtuPaths.map { MTUVerification.Path(from: $0.from, to: $0.to, vlan: Int($0.vlan), passed: Int($0.passed), failed: $0.failed == 0 ? nil : Int($0.failed)) }
    }

    static func interfaces(_ result: Vnet_V1_VlanVerification) -> [MTUVerification.Interface] {
        result.interfaces.map { MTUVerification.Interface(host: $0.host, name: $0.name, mtu: Int($0.mtu)) }
    }

    static func mtuFindings(_ result: Vnet_V1_VlanVerification, ports: [String: LLDPNeighbor]) -> [String] {
        guard result.expectedMtu > 0 else { return [] }
        return MTUVerification.findings(paths: paths(result), interfaces: interfaces(result),
                                        expected: .init(mtu: Int(result.expectedMtu), source: result.expectedMtuSource), ports: ports)
    }

    /// Each host's switch port, as its agent heard it (LLDP).
    static func ports(_ result: Vnet_V1_VlanVerification) -> [String: LLDPNeighbor] {
        Dictionary(result.ports.compactMap { port in LLDPNeighbor(wire: port.neighbor).map { (port.host, $0) } }, uniquingKeysWith: { a, _ in a })
    }

    static func renderPorts(_ ports: [String: LLDPNeighbor]) -> String {
        ports.isEmpty ? "" : "switch ports (LLDP): " + ports.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.label)" }.joined(separator: ", ") + "\n"
    }

    /// The interfaces, then per VID only the directions short of what they should carry (all of them: --json).
    static func renderMTU(_ result: Vnet_V1_VlanVerification, findings: [String]) -> String {
        guard result.expectedMtu > 0 else { return "MTU: no host reported its interface MTU\n" }
        var out = "MTU (expected \(result.expectedMtu): \(result.expectedMtuSource))\n"
        var rows = [["HOST", "INTERFACE", "MTU"]]
        for interface in result.interfaces { rows.append([interface.host, interface.name, String(interface.mtu)]) }
        out += table(rows)
        let all = paths(result)
        let mtus = Dictionary(interfaces(result).map { ($0.host, $0.mtu) }, uniquingKeysWith: { a, _ in a })
        let short = all.filter { MTUVerification.isShort($0, expected: Int(result.expectedMtu), mtus: mtus) }
        if short.isEmpty {
            let smallest = all.map(\.passed).min()
            out += all.isEmpty ? "no path was searched (no pair answered)\n"
                : "every direction on every VID passes what its ends allow (\(all.count) directions searched; smallest that passes: \(smallest!))\n"
        } else {
            var rows = [["VID", "FROM -> TO", "PASSES", "NOT"]]
            for path in short.sorted(by: { ($0.vlan, $0.from, $0.to) < ($1.vlan, $1.from, $1.to) }) {
                rows.append([path.vlan == 0 ? "untagged" : String(path.vlan), "\(path.from) -> \(path.to)", String(path.passed), path.failed.map(String.init) ?? "-"])
            }
            out += "short paths (largest frame that passes, smallest that does not):\n" + table(rows)
        }
        return out + findings.map { "mtu: \($0)\n" }.joined()
    }

    static func render(_ result: Vnet_V1_VlanVerification) -> String {
        var out = ""
        for vlan in [UInt32(0)] + result.vlans {
            let pairs = result.pairs.filter { $0.vlan == vlan }
            if pairs.isEmpty { continue }
            out += vlan == 0 ? "untagged (control)\n" : "VLAN \(vlan)\n"
            var rows = [["PAIR", "RESULT", "RTT p50", "RTT p99"]]
            for pair in pairs {
                let status = pair.status == "one-way" ? "one-way \(pair.from) -> \(pair.to) only" : pair.status.uppercased() == "OK" ? "OK" : pair.status.uppercased()
                rows.append(["\(pair.a) <-> \(pair.b)", status, pair.rttP50Us == 0 ? "-" : "\(pair.rttP50Us) us", pair.rttP99Us == 0 ? "-" : "\(pair.rttP99Us) us"])
            }
            out += table(rows)
        }
        if !result.unreachable.isEmpty { out += "unreachable (not a VLAN failure): \(result.unreachable.joined(separator: ", "))\n" }
        let bad = result.pairs.filter { $0.status != "ok" && $0.status != "unreachable" }.count
        out += bad == 0 && result.unreachable.isEmpty ? "every pair OK on every VID\n" : "\(bad) pair results not OK\n"
        return out
    }
}

/// `--mtu --json`: every direction searched, each host's interface, the expectation and the findings.
struct MTUView: Encodable {
    var expected: Int?, expectedSource: String?
    var interfaces: [MTUVerification.Interface]
    var paths: [MTUVerification.Path]
    var findings: [String]
    init(_ result: Vnet_V1_VlanVerification, findings: [String]) {
        expected = result.expectedMtu == 0 ? nil : Int(result.expectedMtu)
        expectedSource = result.expectedMtuSource.isEmpty ? nil : result.expectedMtuSource
        interfaces = VerifyVLANCommand.interfaces(result)
        paths = VerifyVLANCommand.paths(result)
        self.findings = findings
    }
}

/// `--dhcp --json`: every server seen and the findings.
struct DHCPView: Encodable {
    struct Server: Encodable {
        var vlan: Int, mac: String, ip: String, identifier: String?, seenBy: [String], answeredProbe: Bool, allowed: Bool, instanceNetwork: Bool, rogue: Bool
    }
    var servers: [Server]
    var findings: [String]
    init(servers: [RogueDHCP.Server], findings: [String]) {
        self.servers = servers.map {
            Server(vlan: $0.vlan, mac: $0.mac.description, ip: $0.ip.description, identifier: $0.identifier?.description, seenBy: $0.seenBy,
                   answeredProbe: $0.answeredProbe, allowed: $0.allowed, instanceNetwork: $0.instanceNetwork, rogue: $0.rogue)
        }
        self.findings = findings
    }
}

struct VerificationView: Encodable {
    struct Pair: Encodable { var a: String, b: String, vlan: Int, status: String, from: String?, to: String?, rttP50Us: UInt64?, rttP99Us: UInt64? }
    var vlans: [Int], hosts: [String], unreachable: [String], pairs: [Pair], culprits: [String: String], problems: String?
    var conclusions: [String], advice: [String]
    var mtu: MTUView?
    var dhcp: DHCPView?
    /// Host -> its switch port's label ("sw1 Eth1/7"), where its agent heard LLDP.
    var switchPorts: [String: String]
    init(_ result: Vnet_V1_VlanVerification, problems: String, conclusions: [String], advice: [String], mtu: MTUView? = nil, dhcp: DHCPView? = nil) {
        self.mtu = mtu
        self.dhcp = dhcp
        switchPorts = VerifyVLANCommand.ports(result).mapValues(\.label)
        self.advice = advice
        self.conclusions = conclusions
        vlans = result.vlans.map(Int.init); hosts = result.hosts; unreachable = result.unreachable
        pairs = result.pairs.map { Pair(a: $0.a, b: $0.b, vlan: Int($0.vlan), status: $0.status, from: $0.from.isEmpty ? nil : $0.from,
                                        to: $0.to.isEmpty ? nil : $0.to, rttP50Us: $0.rttP50Us == 0 ? nil : $0.rttP50Us, rttP99Us: $0.rttP99Us == 0 ? nil : $0.rttP99Us) }
        culprits = Dictionary(uniqueKeysWithValues: result.culprits.map { (String($0.vlan), $0.host) })
        self.problems = problems.isEmpty ? nil : problems
    }
}

extension VLANProbeMethod: ExpressibleByArgument {}
