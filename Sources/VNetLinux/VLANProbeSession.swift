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
///
/// With `mtu`, each peer and VID that answered is also searched for the largest frame that reaches it
/// (`MTUSearch`: padded probes, small acknowledgements), big frames paced to `mtuBytesPerSecond`. A peer may
/// still be searching after this host heard all its ordinary probes, so here a host ends only once it is done
/// itself and every peer has said it is done too (a `done` frame on every VID, every 100 ms until it ends).
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
    /// The interface's MTU: the largest MTU probe this host can send.
    public let interfaceMTU: Int
    let nonce = UInt64.random(in: 1...UInt64.max)
    /// When (CLOCK_MONOTONIC, ns) every peer had answered on every VID during the last run; nil if some never did.
    public private(set) var completedAt: UInt64?
    /// How fast MTU probes go out: a fleet searching at once must not overrun its peers' receive buffers
    /// (4 MiB each), where a dropped big frame would read as a small MTU.
    public var mtuBytesPerSecond: Double = 100e6

    /// Opens the socket on `interface`; throws with the reason (no such interface, no CAP_NET_RAW).
    public init(interface: String, name: String) throws {
        if let problem = NameRules.interfaceNameProblem(interface) { throw Failure(description: "interface: \(problem)") }
        self.name = name
        var index: Int32 = 0, mtu: Int32 = 0
        var bytes = [UInt8](repeating: 0, count: 6)
        let result = interface.withCString { vnet_probe_open($0, VLANProbe.etherType, &index, &bytes, &mtu) }
        guard result >= 0 else { throw Failure(description: "cannot open a packet socket on \(interface): \(String(cString: strerror(-result)))") }
        descriptor = result
        ifindex = index
        interfaceMTU = Int(mtu)
        mac = MACAddress(bytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
    }

    deinit { close(descriptor) }

    static let broadcast = MACAddress(0xffff_ffff_ffff)

    /// Probes and answers until `duration` has passed; returns what this host saw of each peer on each VID.
    /// `probeAt`: when to send the first probe (CLOCK_MONOTONIC ns); until then it only listens and answers, so
    /// that every participant's socket is open before anyone probes. Nil: at once.
    struct Key: Hashable { var peer: String; var vlan: Int }

    /// `hub`: a star (the coordinator's watch and bring-up checks): a host other than the hub probes the hub only,
    /// the hub probes every host, and there is no broadcast round; what is learnt is each host's path to the hub.
    public func run(peers allPeers: [Peer], vlans: [Int], count: Int, duration: Double, probeAt: UInt64? = nil,
                    linger: Double = 0.05, mtu: Bool = false, expectedMTU: Int? = nil, hub: String? = nil) -> [VLANVerification.Observation] {
        let peers = allPeers.filter { $0.name != name && $0.mac != mac && (hub == nil || hub == name || $0.name == hub) }
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
        if hub == nil { for vlan in all { schedule.append((at, vlan, nil)); at += 50_000 } }
        var next = 0
        // The MTU search: its probes wait in a queue and leave paced; `done` frames announce this host's end.
        var search = MTUSearch(ceiling: min(interfaceMTU, VLANProbe.maxSize - 4), floor: VLANProbe.smallestSize(sender: name),
                               preferred: [1500] + (expectedMTU.map { [$0] } ?? []))
        var outbox = MTUOutbox(bytesPerSecond: mtuBytesPerSecond)
        var finishedPeers: Set<String> = []
        var announcedAt: UInt64?
        let peerByName = Dictionary(peers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var buffer = [UInt8](repeating: 0, count: mtu ? 65536 : 2048)
        /// This host needs no more answers: said on every VID (whichever of them reaches a peer).
        func announce() {
            for vlan in all {
                sequence &+= 1
                send(VLANProbe(destination: Self.broadcast, source: mac, vlan: vlan, kind: .done, nonce: nonce, sequence: sequence,
                               sentNanoseconds: monotonicNanoseconds(), sender: name))
            }
        }
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
            if mtu {
                outbox.add(search.tick(now: Double(now) / 1e9))
                while let item = outbox.next(at: monotonicNanoseconds(), search: search) {
                    guard let peer = peerByName[item.target.peer] else { continue }
                    sequence &+= 1
                    let at = monotonicNanoseconds()
                    send(VLANProbe(destination: peer.mac, source: mac, vlan: item.target.vlan, kind: .probe, nonce: nonce, sequence: sequence,
                                   sentNanoseconds: at, sender: name, size: item.size))
                    search.sent(item, at: Double(at) / 1e9)
                }
            }
            let nextAt = min(next < schedule.count ? schedule[next].at : UInt64.max, outbox.isEmpty ? UInt64.max : outbox.nextAt)
            let wait = nextAt == UInt64.max ? 5 : Int((nextAt - min(nextAt, now)) / 1_000_000)
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
                    send(frame.reply(from: mac, name: name))
                    guard frame.size == 0 else { continue }
                    received[key, default: []].insert(frame.sequence)
                    if peerNames.contains(frame.sender), all.contains(frame.vlan) { heard.insert(key) }
                case .reply:
                    guard frame.nonce == nonce, peerNames.contains(frame.sender), all.contains(frame.vlan) else { continue }
                    let arrived = monotonicNanoseconds()
                    let target = MTUSearch.Target(peer: frame.sender, vlan: frame.vlan)
                    if frame.size > 0 {
                        if mtu {
                            outbox.add(search.acknowledged(target, size: frame.size, now: Double(arrived) / 1e9,
                                                         roundTrip: Double(arrived &- frame.sentNanoseconds) / 1e9))
                        }
                        continue
                    }
                    let roundTrip = arrived &- frame.sentNanoseconds
                    if replies[key, default: []].insert(frame.sequence).inserted {
                        rtts[key, default: []].append(roundTrip / 1000)
                        if replies.count == peers.count * all.count, completedAt == nil { completedAt = arrived }
                    }
                    if mtu {
                        // The peer answers on this VID: its search can start, timed by every round trip seen.
                        search.sample(roundTrip: Double(roundTrip) / 1e9)
                        outbox.add(search.start(target, now: Double(arrived) / 1e9))
                    }
                case .done:
                    if peerNames.contains(frame.sender) { finishedPeers.insert(frame.sender) }
                }
            }
            guard doneAt == nil, completedAt != nil, !peers.isEmpty else { continue }
            if !mtu {
                if heard.count == peers.count * all.count { doneAt = monotonicNanoseconds() + UInt64(linger * 1e9) }
            } else if search.finished {
                // Said again every 100 ms: a peer's receive buffer may be full of big frames when it is said.
                if announcedAt.map({ monotonicNanoseconds() - $0 >= 100_000_000 }) ?? true {
                    announcedAt = monotonicNanoseconds()
                    announce()
                }
                if finishedPeers.isSuperset(of: peerNames) { doneAt = monotonicNanoseconds() + UInt64(linger * 1e9) }
            }
        }
        return peers.flatMap { peer in
            all.map { vlan in
                let key = Key(peer: peer.name, vlan: vlan)
                return VLANVerification.Observation(host: name, peer: peer.name, vlan: vlan, sent: sent[key] ?? 0,
                                                    replies: replies[key]?.count ?? 0, received: received[key]?.count ?? 0,
                                                    rttMicroseconds: rtts[key] ?? [],
                                                    mtu: search.outcome(MTUSearch.Target(peer: peer.name, vlan: vlan)))
            }
        }

    }

    func send(_ probe: VLANProbe) {
        let frame = probe.frame
        _ = frame.withUnsafeBufferPointer { vnet_probe_send(descriptor, ifindex, $0.baseAddress, $0.count) }
    }
}

/// MTU probes waiting to leave, paced to a byte rate (bursts of up to 1 ms's worth). A probe the search no
/// longer waits for (answered, given up, or its search over) is dropped when its turn comes, and one already
/// waiting is not queued again: a retry of a probe that never left would only lengthen the queue.
struct MTUOutbox {
    let bytesPerSecond: Double
    private var waiting: [MTUSearch.Probe] = []
    private var head = 0
    private var queued: Set<MTUSearch.Probe> = []
    /// When the next frame may leave (CLOCK_MONOTONIC ns).
    private(set) var nextAt: UInt64 = 0

    init(bytesPerSecond: Double) { self.bytesPerSecond = bytesPerSecond }

    var isEmpty: Bool { head == waiting.count }
    var count: Int { waiting.count - head }

    mutating func add(_ probes: [MTUSearch.Probe]) {
        for probe in probes where queued.insert(probe).inserted { waiting.append(probe) }
    }

    /// The next probe to send at `now`, if its turn has come; stale ones are skipped.
    mutating func next(at now: UInt64, search: MTUSearch) -> MTUSearch.Probe? {
        while head < waiting.count, nextAt <= now {
            let probe = waiting[head]
            head += 1
            queued.remove(probe)
            if head == waiting.count { waiting = []; head = 0 }
            guard search.isPending(probe) else { continue }
            nextAt = max(nextAt, now &- 1_000_000) + UInt64(Double(probe.size + 18) / bytesPerSecond * 1e9)
            return probe
        }
        return nil
    }
}

let PACKET_OUTGOING_TYPE: Int32 = 4   // linux/if_packet.h PACKET_OUTGOING
let PACKET_OTHERHOST_TYPE: Int32 = 3  // PACKET_OTHERHOST

/// The agent's prober on Linux: one `VLANProbeSession` per verification, or the kernel method.
public final class LinuxVLANProber: VLANProbing {
    public init() {}

    public func probe(_ request: VLANProbeRequest) throws -> VLANProbeOutcome {
        // The DHCP check runs beside the VLAN check, on a socket and thread of its own, from the moment probing
        // starts; both are waited for (should the VLAN check throw, the scan's thread ends on its own).
        let start = monotonicNanoseconds() + UInt64(request.listenFirst * 1e9)
        let sightings = SightingsBox()
        let scanned = DispatchSemaphore(value: 0)
        if request.dhcp {
            let interface = request.interface, name = request.name, vlans = request.vlans
            let duration = min(request.duration, Self.dhcpListening)
            Thread.detachNewThread {
                sightings.result = Result { try DHCPServerScan(interface: interface, name: name).run(vlans: vlans, duration: duration, start: start) }
                scanned.signal()
            }
        }
        var outcome: VLANProbeOutcome
        if request.method == .kernel {
            outcome = VLANProbeOutcome(observations: try KernelVLANCheck().run(interface: request.interface, name: request.name, hosts: request.peers.map(\.name),
                                                                               vlans: request.vlans, count: request.count, listenFirst: request.listenFirst,
                                                                               duration: request.duration))
        } else {
            let session = try VLANProbeSession(interface: request.interface, name: request.name)
            let observations = session.run(peers: request.peers.map { VLANProbeSession.Peer(name: $0.name, mac: $0.mac) }, vlans: request.vlans,
                                           count: request.count, duration: request.duration, probeAt: start, mtu: request.mtu,
                                           expectedMTU: request.expectedMTU, hub: request.hub)
            outcome = VLANProbeOutcome(observations: observations, interfaceMTU: session.interfaceMTU)
        }
        if request.dhcp {
            scanned.wait()
            outcome.dhcpServers = try sightings.result.get()
        }
        return outcome
    }

    /// How long the DHCP check listens (at most the probe window): ISC dhcpd offers a second after a DISCOVER
    /// when it pings the address first (ping-check), and the last DISCOVER goes out a second after the first.
    public static let dhcpListening = 2.5
}

/// The DHCP check's result, handed from its thread (written before the semaphore is signalled, read after).
final class SightingsBox: @unchecked Sendable {
    var result: Result<[RogueDHCP.Sighting], any Error> = .success([])
}
