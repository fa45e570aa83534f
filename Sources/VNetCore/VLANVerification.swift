/// Judges a VLAN verification from what every host reported: per pair of hosts and VID, whether tagged frames
/// pass both ways, one way (and which), or not at all; the untagged control round tells "no link" apart from
/// "tagged frames dropped"; and the likely culprit of a VID is the host every one of whose pairs failed on it
/// while other pairs passed. Pure.
public enum VLANVerification {
    /// What one host saw of one peer on one VID (0: the untagged control).
    public struct Observation: Sendable, Equatable, Codable {
        public var host: String
        public var peer: String
        public var vlan: Int
        /// Probes this host sent to the peer, replies it got back, probes it received from the peer.
        public var sent: Int
        public var replies: Int
        public var received: Int
        public var rttMicroseconds: [UInt64]
        /// `--mtu`: what this host's search found towards the peer (nil: not searched, the peer never answered).
        public var mtu: MTUSearch.Outcome?

        public init(host: String, peer: String, vlan: Int, sent: Int, replies: Int, received: Int, rttMicroseconds: [UInt64] = [],
                    mtu: MTUSearch.Outcome? = nil) {
            self.host = host; self.peer = peer; self.vlan = vlan; self.sent = sent; self.replies = replies
            self.received = received; self.rttMicroseconds = rttMicroseconds; self.mtu = mtu
        }
    }

    public enum Status: Sendable, Equatable, Codable, CustomStringConvertible {
        case ok
        /// Frames pass only from `from` to `to`.
        case oneWay(from: String, to: String)
        case failed
        /// A host did not take part (DOWN, or its report never came): not a VLAN failure.
        case unreachable(String)

        public var description: String {
            switch self {
            case .ok: "OK"
            case .oneWay(let from, let to): "one-way \(from)->\(to)"
            case .failed: "FAILED"
            case .unreachable(let host): "unreachable (\(host))"
            }
        }
        public var isOK: Bool { self == .ok }
    }

    public struct Pair: Sendable, Equatable, Codable {
        public var a: String, b: String, vlan: Int
        public var status: Status
        public var rttP50Microseconds: UInt64?
        public var rttP99Microseconds: UInt64?
        public init(a: String, b: String, vlan: Int, status: Status, rttP50Microseconds: UInt64? = nil, rttP99Microseconds: UInt64? = nil) {
            self.a = a; self.b = b; self.vlan = vlan; self.status = status
            self.rttP50Microseconds = rttP50Microseconds; self.rttP99Microseconds = rttP99Microseconds
        }
    }

    public struct Result: Sendable, Equatable, Codable {
        public var pairs: [Pair]
        /// VID -> the host every pair of which failed on it while others passed.
        public var culprits: [Int: String]
        /// Pairs that fail even untagged: a link problem, not a VLAN one.
        public var noLink: [Pair]
        public var allOK: Bool { pairs.allSatisfy(\.status.isOK) }
    }

    /// What the judged pairs allow an operator to conclude, and what they do not, one sentence each: a host
    /// that is the one side every failing pair shares (and, with the untagged control passing, that its link is
    /// up), several such hosts, a VID carried nowhere, pairs that fail between hosts that each pass with others,
    /// a host nothing reaches even untagged, and the limit of two hosts (either side may be the one). Hosts
    /// that took no part are left out.
    /// `ports`: the switch port each host heard (LLDP): hosts are named with it ("n3 (sw1 Eth1/7)"), and where
    /// a culprit's port announces its VLANs, the conclusion says whether the announcement agrees.
    public static func conclusions(hosts: [String], vlans: [Int], pairs: [Pair], culprits: [Int: String], unreachable: Set<String> = [],
                                   control: Bool = true, ports: [String: LLDPNeighbor] = [:]) -> [String] {
        func named(_ host: String) -> String { LLDPNeighbor.name(host, ports: ports) }
        let present = hosts.filter { !unreachable.contains($0) }.sorted()
        guard present.count >= 2 else { return [] }
        let taking = pairs.filter { !unreachable.contains($0.a) && !unreachable.contains($0.b) }
        func name(_ pair: Pair) -> String { "\(pair.a) <-> \(pair.b)" }
        func controlPassed(_ pair: Pair) -> Bool {
            !control || taking.contains { $0.vlan == 0 && $0.a == pair.a && $0.b == pair.b && $0.status.isOK }
        }
        var out: [String] = []
        if control {
            let untagged = taking.filter { $0.vlan == 0 }
            if present.count == 2, let pair = untagged.first, !pair.status.isOK {
                out.append("no frame passes between \(pair.a) and \(pair.b), untagged either: a link problem, not VLAN tagging; with two hosts the side cannot be told")
            } else if untagged.contains(where: \.status.isOK) {
                for host in present {
                    let mine = untagged.filter { $0.a == host || $0.b == host }
                    if !mine.isEmpty, mine.allSatisfy({ !$0.status.isOK }) {
                        out.append("\(named(host)): nothing passes to or from it, untagged either: its link or cabling, not VLAN tagging")
                    }
                }
            }
        }
        for vlan in vlans where vlan != 0 {
            let judged = taking.filter { $0.vlan == vlan && controlPassed($0) }
            let failing = judged.filter { !$0.status.isOK }
            guard !failing.isEmpty else { continue }
            if present.count == 2 {
                out.append("VID \(vlan) fails between \(present[0]) and \(present[1]) (\(failing[0].status)): with two hosts either side may drop it; a third host tells which (the front end takes part unless --no-frontend)")
            } else if let host = culprits[vlan] {
                out.append("VID \(vlan): \(named(host)) fails with every other host while they pass among themselves: \(host)'s side drops it, its switch port not carrying VID \(vlan) or its NIC filtering it"
                           + (control ? "; untagged frames pass to and from \(host), so its link is up" : "")
                           + (ports[host].flatMap { announcement(of: $0, vlan: vlan, passes: false) }.map { "; \($0)" } ?? ""))
            } else if failing.count == judged.count {
                out.append("VID \(vlan) fails between every pair: it is not carried between any of these hosts (not allowed on the trunks, or every port drops it); no single host is to blame")
            } else {
                let suspects = present.filter { host in
                    let mine = judged.filter { $0.a == host || $0.b == host }
                    return !mine.isEmpty && mine.allSatisfy { !$0.status.isOK }
                }
                if suspects.count > 1 {
                    out.append("VID \(vlan): \(suspects.map(named).joined(separator: ", ")) each fail with every other host: look at each one's switch port")
                } else {
                    out.append("VID \(vlan): \(failing.map(name).joined(separator: ", ")) fail though each of these hosts passes with others: the path between them (a trunk between switches?) may not carry it")
                }
            }
        }
        return out
    }

    /// What a port's LLDP says of `vlan` against what was measured (`passes`): nil when it announces no VLANs.
    public static func announcement(of port: LLDPNeighbor, vlan: Int, passes: Bool) -> String? {
        guard !port.vlans.isEmpty else { return nil }
        let list = port.vlans.keys.sorted().map(String.init).joined(separator: ",")
        switch (port.vlans[vlan] != nil, passes) {
        case (false, false): return "\(port.label) announces VLANs \(list) (LLDP), not \(vlan): the switch's configuration says the same"
        case (true, false): return "yet \(port.label) announces VLAN \(vlan) (LLDP): the NIC, or something between it and the port, drops it"
        case (false, true): return "\(port.label) announces VLANs \(list) (LLDP), not \(vlan), though \(vlan) passes: its announcement is incomplete"
        case (true, true): return nil
        }
    }

    /// `control: false` when no untagged round was run (the kernel method): pairs are judged on their VIDs alone.
    public static func judge(hosts: [String], vlans: [Int], observations: [Observation], unreachable: Set<String> = [],
                             control: Bool = true) -> Result {
        var seen: [String: Observation] = [:]
        for observation in observations { seen["\(observation.host)\u{0}\(observation.peer)\u{0}\(observation.vlan)"] = observation }
        func get(_ host: String, _ peer: String, _ vlan: Int) -> Observation? { seen["\(host)\u{0}\(peer)\u{0}\(vlan)"] }
        let sortedHosts = hosts.sorted()
        var pairs: [Pair] = []
        for vlan in ((control ? [0] : []) + vlans.filter { $0 != 0 }) {
            for (i, a) in sortedHosts.enumerated() {
                for b in sortedHosts[(i + 1)...] {
                    var pair = Pair(a: a, b: b, vlan: vlan, status: .failed)
                    if let down = [a, b].first(where: unreachable.contains) {
                        pair.status = .unreachable(down)
                        pairs.append(pair)
                        continue
                    }
                    let ab = get(a, b, vlan), ba = get(b, a, vlan)
                    // A reply proves both directions; otherwise a -> b passes if b heard a's probes, and back.
                    let answered = (ab?.replies ?? 0) > 0 || (ba?.replies ?? 0) > 0
                    let forward = (ba?.received ?? 0) > 0
                    let backward = (ab?.received ?? 0) > 0
                    switch (forward || answered, backward || answered) {
                    case (true, true): pair.status = .ok
                    case (true, false): pair.status = .oneWay(from: a, to: b)
                    case (false, true): pair.status = .oneWay(from: b, to: a)
                    case (false, false): pair.status = .failed
                    }
                    let rtts = ((ab?.rttMicroseconds ?? []) + (ba?.rttMicroseconds ?? [])).sorted()
                    if !rtts.isEmpty {
                        pair.rttP50Microseconds = rtts[(rtts.count - 1) / 2]
                        pair.rttP99Microseconds = rtts[min(rtts.count - 1, Int((Double(rtts.count - 1) * 0.99).rounded()))]
                    }
                    pairs.append(pair)
                }
            }
        }
        let controlByPair = Dictionary(pairs.filter { $0.vlan == 0 }.map { ("\($0.a)\u{0}\($0.b)", $0) }, uniquingKeysWith: { a, _ in a })
        let noLink = pairs.filter { $0.vlan == 0 && $0.status == .failed }
        var culprits: [Int: String] = [:]
        for vlan in vlans where vlan != 0 {
            // Only pairs whose untagged control passed say anything about tagged frames, and a host that took no
            // part (DOWN, or no report in time) is no culprit.
            let judged = pairs.filter {
                $0.vlan == vlan && (!control || controlByPair["\($0.a)\u{0}\($0.b)"]?.status.isOK == true)
                    && { if case .unreachable = $0.status { false } else { true } }($0)
            }
            guard judged.contains(where: \.status.isOK) else { continue }  // failing everywhere: no single culprit
            let suspects = sortedHosts.filter { host in
                let mine = judged.filter { $0.a == host || $0.b == host }
                return !mine.isEmpty && mine.allSatisfy { !$0.status.isOK }
            }
            if suspects.count == 1 { culprits[vlan] = suspects[0] }
        }
        return Result(pairs: pairs, culprits: culprits, noLink: noLink)
    }
}

/// How a host checks a VLAN: tagged frames on a packet socket (no device needed), or a real `<iface>.<vid>`
/// device and ping through it (which also registers the VID with a NIC that filters). On the wire "" is raw.
public enum VLANProbeMethod: String, Sendable, CaseIterable {
    case raw, kernel

    public init?(wire: String) { self.init(rawValue: wire.isEmpty ? "raw" : wire) }
    public var wire: String { self == .raw ? "" : rawValue }
}

extension VLANVerification {
    /// What the matrix alone does not say. When untagged frames pass between hosts but every tagged VID fails
    /// between them, the VLAN layer as a whole is cut: either the switch ports carry no tagged frames (access
    /// ports, or these VIDs not allowed on the trunk), or the hosts' NICs drop VIDs they have not registered
    /// (hardware VLAN filtering; measured on QEMU's virtio-net). `pairs` are (VID, passed) per pair; VID 0 is
    /// the untagged control.
    public static func advice(pairs: [(vlan: Int, passed: Bool)], method: VLANProbeMethod) -> [String] {
        let control = pairs.filter { $0.vlan == 0 }
        let tagged = pairs.filter { $0.vlan != 0 }
        guard !tagged.isEmpty, !tagged.contains(where: \.passed) else { return [] }
        if method == .kernel {
            return ["every tagged VID failed on every pair: check that the switch ports between the hosts are trunks carrying these VIDs"]
        }
        guard control.contains(where: \.passed) else { return [] }
        return ["untagged frames pass but every tagged VID failed on every pair that has a link: either the switch ports carry no tagged frames (access ports, or these VIDs not allowed on the trunk), or the hosts' NICs drop VIDs that no VLAN device has registered",
                "the raw probe holds each interface promiscuous while it listens, which gets past most NIC VLAN filters; to rule the NIC out, run `vnetctl verify-vlan --method kernel` (it registers each VID with a real <iface>.<vid> device) and look at `ethtool -k IFACE | grep rx-vlan-filter` on the hosts"]
    }
}

/// `10,20-30`: the VIDs a verification asks for, each 2-4094 (1 is the default VLAN, 4095 reserved), sorted,
/// without repeats.
public enum VLANList {
    public static func parse(_ text: String) throws(ClusterError) -> [Int] {
        var vlans = Set<Int>()
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let (low, high) = bounds(item) else {
                throw ClusterError("'\(item)' is not a VID or a range of VIDs (like 10 or 20-30)")
            }
            guard low >= 2, high <= 4094 else { throw ClusterError("'\(item)': VIDs are 2-4094") }
            guard high - low < 4094 else { throw ClusterError("'\(item)' is too wide") }
            vlans.formUnion(low...high)
        }
        return vlans.sorted()
    }

    /// One range, `FIRST-LAST` (VNET_VLANRANGE): the VIDs groups get their networks from.
    public static func parseRange(_ text: String) throws(ClusterError) -> ClosedRange<Int> {
        guard text.contains("-"), let (low, high) = bounds(text[...]) else {
            throw ClusterError("'\(text)' is not a range of VIDs FIRST-LAST (like 10-4094)")
        }
        guard low >= NetworkLayout.firstVLAN, high <= NetworkLayout.lastPossibleVLAN else {
            throw ClusterError("'\(text)': VIDs are \(NetworkLayout.firstVLAN)-\(NetworkLayout.lastPossibleVLAN) (0 and 1 are not used for groups, 4095 is reserved by 802.1Q)")
        }
        return low...high
    }

    /// `10` or `20-30` as its two ends, in order; nil when it is neither (the ends are not checked here).
    private static func bounds(_ item: Substring) -> (Int, Int)? {
        let ends = item.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(ends.count), let low = Int(ends[0]), let high = Int(ends.last!), low <= high else { return nil }
        return (low, high)
    }
}
