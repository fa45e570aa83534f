import VNetBus
import VNetCore
import VNetProto

/// One `verify-vlan` in progress at the coordinator: which hosts take part, what each reported, and whom to
/// answer. Every participant is told to listen first and then probe every other; the answer is given when every
/// report is in or the time is up (a host that never reported is unreachable, not a VLAN failure).
struct VLANVerificationRun {
    let id: String
    let replyPrefix: [[UInt8]]
    let requestID: String
    let vlans: [Int]
    let hosts: [String]
    /// Whether an untagged control round ran (not with the kernel method).
    let control: Bool
    /// `--mtu`: the hosts searched each path's largest frame; judged against `expected` (the operator's, else
    /// the front end's interface MTU as `frontend` reports it).
    var mtu = false
    var expected: MTUVerification.Expectation?
    var frontend = ""
    /// `--dhcp`: the hosts asked for DHCP offers; servers are judged against the front end's MACs in `mode`.
    /// The switch port each host's agent last heard (LLDP), to name culprits by.
    var ports: [String: Vnet_V1_LldpNeighbor] = [:]
    var dhcp = false
    var allowedDHCPServers: Set<MACAddress> = []
    var mode = NetworkMode.system
    var unreachable: Set<String>
    var reports: [String: Vnet_V1_ProbeReport] = [:]
    let deadline: Double
    /// A check of the coordinator's own (a bring-up check, a watch round): nobody waits for a reply; the
    /// driver judges it when it ends.
    var background = false

    var participants: [String] { hosts.filter { !unreachable.contains($0) } }
    var complete: Bool { participants.allSatisfy { reports[$0] != nil } }

    /// The judgement, with hosts that did not report (or could not probe) as unreachable; what each host saw,
    /// and the probe errors hosts reported.
    func judged() -> (result: VLANVerification.Result, missing: Set<String>, observations: [VLANVerification.Observation], errors: [String]) {
        var missing = unreachable
        var observations: [VLANVerification.Observation] = []
        var errors: [String] = []
        for host in participants {
            guard let report = reports[host] else { missing.insert(host); continue }
            if !report.error.isEmpty { missing.insert(host); errors.append("\(host): \(report.error)"); continue }
            observations += report.results.map {
                VLANVerification.Observation(host: host, peer: $0.peer, vlan: Int($0.vlan), sent: Int($0.sent), replies: Int($0.replies),
                                             received: Int($0.received), rttMicroseconds: $0.rttUs,
                                             mtu: $0.mtuPassed == 0 ? nil : MTUSearch.Outcome(passed: Int($0.mtuPassed), failed: $0.mtuFailed == 0 ? nil : Int($0.mtuFailed)))
            }
        }
        let result = VLANVerification.judge(hosts: hosts, vlans: vlans, observations: observations, unreachable: missing, control: control)
        return (result, missing, observations, errors)
    }

    /// The reply: the judgement, the MTU, DHCP and switch ports asked for, the hosts' errors.
    func reply() -> Vnet_V1_ControlReply {
        let (result, missing, observations, errors) = judged()
        var verification = Vnet_V1_VlanVerification()
        verification.vlans = vlans.map(UInt32.init)
        verification.hosts = hosts
        verification.unreachable = missing.sorted()
        verification.pairs = result.pairs.map { pair in
            var wire = Vnet_V1_VlanPair()
            wire.a = pair.a; wire.b = pair.b; wire.vlan = UInt32(pair.vlan)
            switch pair.status {
            case .ok: wire.status = "ok"
            case .failed: wire.status = "failed"
            case .unreachable: wire.status = "unreachable"
            case .oneWay(let from, let to): wire.status = "one-way"; wire.from = from; wire.to = to
            }
            wire.rttP50Us = pair.rttP50Microseconds ?? 0
            wire.rttP99Us = pair.rttP99Microseconds ?? 0
            return wire
        }
        verification.culprits = result.culprits.sorted { $0.key < $1.key }.map { vlan, host in
            var culprit = Vnet_V1_VlanCulprit()
            culprit.vlan = UInt32(vlan)
            culprit.host = host
            return culprit
        }
        verification.ports = hosts.compactMap { host in
            ports[host].map { neighbor in
                var port = Vnet_V1_VlanHostPort()
                port.host = host
                port.neighbor = neighbor
                return port
            }
        }
        if mtu { addMTU(observations, to: &verification) }
        if dhcp { addDHCP(to: &verification) }
        var reply = Vnet_V1_ControlReply()
        reply.requestID = requestID
        reply.ok = true
        reply.error = errors.joined(separator: "; ")
        reply.verification = verification
        return reply
    }

    /// `--dhcp`: every server seen, once per VID and MAC, with who saw it and whether it may serve there.
    func addDHCP(to verification: inout Vnet_V1_VlanVerification) {
        verification.dhcpChecked = true
        let sightings = participants.flatMap { host -> [(host: String, sighting: RogueDHCP.Sighting)] in
            guard let report = reports[host], report.error.isEmpty else { return [] }
            return report.dhcpServers.compactMap { wire in
                guard wire.vlan <= 4094 else { return nil }
                return (host, RogueDHCP.Sighting(vlan: Int(wire.vlan), serverMAC: MACAddress(wire.serverMac), serverIP: IPv4Address(wire.serverIp),
                                                 identifier: wire.identifier == 0 ? nil : IPv4Address(wire.identifier),
                                                 offered: IPv4Address(wire.offered), client: MACAddress(wire.client)))
            }
        }
        verification.dhcpServers = RogueDHCP.judge(sightings: sightings, allowed: allowedDHCPServers, mode: mode).map { server in
            var wire = Vnet_V1_VlanDhcpServer()
            wire.vlan = UInt32(server.vlan)
            wire.mac = server.mac.value
            wire.ip = server.ip.value
            wire.identifier = server.identifier?.value ?? 0
            wire.seenBy = server.seenBy
            wire.answeredProbe = server.answeredProbe
            wire.allowed = server.allowed
            wire.instanceNetwork = server.instanceNetwork
            return wire
        }
    }

    /// `--mtu`: each direction's search, each host's interface, and what the paths are held to.
    func addMTU(_ observations: [VLANVerification.Observation], to verification: inout Vnet_V1_VlanVerification) {
        verification.mtuPaths = observations.compactMap { observation in
            guard let found = observation.mtu else { return nil }
            var path = Vnet_V1_VlanMtuPath()
            path.from = observation.host
            path.to = observation.peer
            path.vlan = UInt32(observation.vlan)
            path.passed = UInt32(found.passed)
            path.failed = UInt32(found.failed ?? 0)
            return path
        }
        let interfaces = participants.compactMap { host -> MTUVerification.Interface? in
            guard let report = reports[host], report.error.isEmpty, report.interfaceMtu > 0 else { return nil }
            return MTUVerification.Interface(host: host, name: report.interface, mtu: Int(report.interfaceMtu))
        }
        verification.interfaces = interfaces.map {
            var wire = Vnet_V1_VlanInterface()
            wire.host = $0.host; wire.name = $0.name; wire.mtu = UInt32($0.mtu)
            return wire
        }
        if let expectation = MTUVerification.expectation(configured: expected, frontend: frontend, interfaces: interfaces) {
            verification.expectedMtu = UInt32(expectation.mtu)
            verification.expectedMtuSource = expectation.source
        }
    }
}
