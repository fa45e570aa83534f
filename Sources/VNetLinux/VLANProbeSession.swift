import CPacket
import Foundation
import VNetSystem
import VNetHost
import VNetCore

/// One host's side of a VLAN verification, on a raw AF_PACKET socket (CAP_NET_RAW only; nothing is created on
/// the host, no address assigned): it answers every probe addressed to it (or broadcast) with the same VID,
/// and probes each peer `count` times per VID (rounds, frames paced), unicast to the peer's MAC, plus one broadcast round per VID, and
/// an untagged control round (VID 0). It runs for `duration` seconds so that it keeps answering while the other
/// hosts, started at about the same time, are still probing, or less: once every peer has answered on every
/// VID and every peer's probes have been heard (and answered) on every VID, nothing more can be learnt and
/// no peer still needs this host, so it ends `linger` later (time for one more round's answers, should one of
/// its replies have been lost). A clean fleet therefore reports in a fraction of the window; a failing pair
/// keeps it open to the end, since silence cannot be told from slowness sooner.
public final class VLANProbeSession {
    public struct Peer: Sendable {
        public var name: String
        public var mac: MACAddress
        public init(name: String, mac: MACAddress) { self.name = name; self.mac = mac }
    }

    public struct Failure: Error, CustomStringConvertible { public var description: String }

    let name: String
    let descriptor: Int32
    let ifindex: Int32
    public let mac: MACAddress
    let nonce = UInt64.random(in: 1...UInt64.max)
    /// When (CLOCK_MONOTONIC, ns) every peer had answered on every VID during the last run; nil if some never did.
    public private(set) var completedAt: UInt64?

    /// Opens the socket on `interface`; throws with the reason (no such interface, no CAP_NET_RAW).
    public init(interface: String, name: String) throws {
        if let problem = NameRules.interfaceNameProblem(interface) { throw Failure(description: "interface: \(problem)") }
        self.name = name
        var index: Int32 = 0
        var bytes = [UInt8](repeating: 0, count: 6)
        let result = interface.withCString { vnet_probe_open($0, VLANProbe.etherType, &index, &bytes) }
        guard result >= 0 else { throw Failure(description: "cannot open a packet socket on \(interface): \(String(cString: strerror(-result)))") }
        descriptor = result
        ifindex = index
        mac = MACAddress(bytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
    }

    deinit { close(descriptor) }

    static let broadcast = MACAddress(0xffff_ffff_ffff)

    /// Probes and answers until `duration` has passed; returns what this host saw of each peer on each VID.
    /// `probeAt`: when to send the first probe (CLOCK_MONOTONIC ns); until then it only listens and answers, so
    /// that every participant's socket is open before anyone probes. Nil: at once.
    struct Key: Hashable { var peer: String; var vlan: Int }

    public func run(peers allPeers: [Peer], vlans: [Int], count: Int, duration: Double, probeAt: UInt64? = nil,
                    linger: Double = 0.05) -> [VLANVerification.Observation] {
        let peers = allPeers.filter { $0.name != name && $0.mac != mac }
        let peerNames = Set(peers.map(\.name))
        var heard: Set<Key> = []
        var doneAt: UInt64?
        completedAt = nil
        let all = [0] + vlans.filter { $0 != 0 }
        var sent: [Key: Int] = [:], replies: [Key: Set<UInt32>] = [:], received: [Key: Set<UInt32>] = [:], rtts: [Key: [UInt64]] = [:]
        let start = max(probeAt ?? 0, monotonicNanoseconds())
        let deadline = start + UInt64(duration * 1e9)
        var sequence: UInt32 = 0
        // Rounds of unicast probes 20 ms apart, then a broadcast round; listening all the while.
        // Frames are paced (50 us apart) so that a fleet probing at once does not overrun switch and host
        // queues; rounds follow each other, then one broadcast round.
        var schedule: [(at: UInt64, vlan: Int, peer: Peer?)] = []
        var at = start
        for _ in 0..<max(1, count) {
            for vlan in all { for peer in peers { schedule.append((at, vlan, peer)); at += 50_000 } }
            at += 10_000_000
        }
        for vlan in all { schedule.append((at, vlan, nil)); at += 50_000 }
        var next = 0
        var buffer = [UInt8](repeating: 0, count: 2048)
        while true {
            let now = monotonicNanoseconds()
            if now >= deadline { break }
            if let doneAt, now >= doneAt { break }
            while next < schedule.count, schedule[next].at <= now {
                let item = schedule[next]
                next += 1
                sequence &+= 1
                let probe = VLANProbe(destination: item.peer?.mac ?? Self.broadcast, source: mac, vlan: item.vlan, kind: .probe,
                                      nonce: nonce, sequence: sequence, sentNanoseconds: monotonicNanoseconds(), sender: name)
                send(probe)
                if let peer = item.peer { sent[Key(peer: peer.name, vlan: item.vlan), default: 0] += 1 }
            }
            let wait = next < schedule.count ? max(0, Int((schedule[next].at - min(schedule[next].at, now)) / 1_000_000)) : 5
            _ = vnet_probe_wait(descriptor, Int32(min(5, wait) + 1))
            while true {
                var type: Int32 = 0, tagged: Int32 = 0, tci: UInt16 = 0
                let length = buffer.withUnsafeMutableBufferPointer { vnet_probe_receive(descriptor, $0.baseAddress, $0.count, &type, &tagged, &tci) }
                guard length >= 0 else { break }
                // Our own outgoing copies and frames for other hosts (a bridge floods until it learns) are not ours.
                guard type != PACKET_OUTGOING_TYPE, type != PACKET_OTHERHOST_TYPE,
                      let frame = VLANProbe.parse(Array(buffer[0..<length]), strippedVLAN: tagged == 1 ? Int(tci & 0x0fff) : nil),
                      frame.sender != name, frame.destination == mac || frame.destination == Self.broadcast else { continue }
                let key = Key(peer: frame.sender, vlan: frame.vlan)
                switch frame.kind {
                case .probe:
                    received[key, default: []].insert(frame.sequence)
                    send(frame.reply(from: mac, name: name))
                    if peerNames.contains(frame.sender), all.contains(frame.vlan) { heard.insert(key) }
                case .reply:
                    guard frame.nonce == nonce else { continue }
                    if replies[key, default: []].insert(frame.sequence).inserted {
                        rtts[key, default: []].append((monotonicNanoseconds() &- frame.sentNanoseconds) / 1000)
                        if replies.count == peers.count * all.count, completedAt == nil { completedAt = monotonicNanoseconds() }
                    }
                }
            }
            if doneAt == nil, completedAt != nil, !peers.isEmpty, heard.count == peers.count * all.count {
                doneAt = monotonicNanoseconds() + UInt64(linger * 1e9)
            }
        }
        return peers.flatMap { peer in
            all.map { vlan in
                let key = Key(peer: peer.name, vlan: vlan)
                return VLANVerification.Observation(host: name, peer: peer.name, vlan: vlan, sent: sent[key] ?? 0,
                                                    replies: replies[key]?.count ?? 0, received: received[key]?.count ?? 0,
                                                    rttMicroseconds: rtts[key] ?? [])
            }
        }
    }

    func send(_ probe: VLANProbe) {
        let frame = probe.frame
        _ = frame.withUnsafeBufferPointer { vnet_probe_send(descriptor, ifindex, $0.baseAddress, $0.count) }
    }
}

let PACKET_OUTGOING_TYPE: Int32 = 4   // linux/if_packet.h PACKET_OUTGOING
let PACKET_OTHERHOST_TYPE: Int32 = 3  // PACKET_OTHERHOST

/// The agent's prober on Linux: one `VLANProbeSession` per verification, or the kernel method.
public final class LinuxVLANProber: VLANProbing {
    public init() {}

    public func probe(method: VLANProbeMethod, interface: String, name: String, peers: [(name: String, mac: MACAddress)], vlans: [Int], count: Int,
                      duration: Double, listenFirst: Double) throws -> [VLANVerification.Observation] {
        if method == .kernel {
            return try KernelVLANCheck().run(interface: interface, name: name, hosts: peers.map(\.name), vlans: vlans, count: count,
                                             listenFirst: listenFirst, duration: duration)
        }
        let session = try VLANProbeSession(interface: interface, name: name)
        return session.run(peers: peers.map { VLANProbeSession.Peer(name: $0.name, mac: $0.mac) }, vlans: vlans, count: count,
                           duration: duration, probeAt: monotonicNanoseconds() + UInt64(listenFirst * 1e9))
    }
}
