import CPacket
import Foundation
import VNetCore
import VNetHost
import VNetSystem

/// Listens for LLDP on the agent's VNET_INTERFACE, on a thread of its own: which switch and port the host is
/// plugged into, and what that port announces (its VLANs, its maximum frame size), for the inventory and for
/// naming a verification's culprit by its port. A raw socket bound to EtherType 0x88cc (CAP_NET_RAW, no lldpd
/// needed on the host). A neighbor expires with its TTL. At most `maxNeighbors` are kept (a segment can have
/// several: a hub, a host's own bridge) and at most `framesPerSecond` are read: anyone on the segment can send
/// LLDP, and a flood must cost the agent nothing but the kernel dropping frames.
public final class LLDPListener: NeighborDiscovery, @unchecked Sendable {
    public struct Failure: Error, CustomStringConvertible { public var description: String }

    public static let maxNeighbors = 16
    public static let framesPerSecond = 50

    let interface: String
    let descriptor: Int32
    private let lock = NSLock()
    private var heard: [String: (neighbor: LLDPNeighbor, at: Double)] = [:]
    private var stopped = false
    private var read = 0
    /// LLDP frames read and understood since the listener started.
    public var framesRead: Int { lock.lock(); defer { lock.unlock() }; return read }

    public init(interface: String) throws {
        if let problem = NameRules.interfaceNameProblem(interface) { throw Failure(description: "interface: \(problem)") }
        self.interface = interface
        var index: Int32 = 0
        let result = interface.withCString { vnet_lldp_open($0, &index) }
        guard result >= 0 else { throw Failure(description: "cannot listen for LLDP on \(interface): \(String(cString: strerror(-result)))") }
        descriptor = result
        let thread = Thread { [weak self] in self?.listen() }
        thread.name = "lldp"
        thread.start()
    }

    deinit { close(descriptor) }

    public func stop() { lock.lock(); stopped = true; lock.unlock() }

    public func neighbors() -> [HeardNeighbor] {
        let now = monotonicSeconds()
        lock.lock(); defer { lock.unlock() }
        return heard.values.filter { now - $0.at <= Double($0.neighbor.ttl) }
            .sorted { $0.at > $1.at }
            .map { HeardNeighbor(interface: interface, neighbor: $0.neighbor, age: now - $0.at) }
    }

    func listen() {
        var buffer = [UInt8](repeating: 0, count: 1600)
        var budget = Self.framesPerSecond, window = monotonicSeconds()
        while true {
            lock.lock(); let done = stopped; lock.unlock()
            if done { return }
            _ = vnet_probe_wait(descriptor, 500)
            let now = monotonicSeconds()
            if now - window >= 1 { window = now; budget = Self.framesPerSecond }
            while budget > 0 {
                var type: Int32 = 0, tagged: Int32 = 0, tci: UInt16 = 0
                let length = buffer.withUnsafeMutableBufferPointer { vnet_probe_receive(descriptor, $0.baseAddress, $0.count, &type, &tagged, &tci) }
                guard length >= 0 else { break }
                budget -= 1
                guard type != PACKET_OUTGOING_TYPE, let neighbor = LLDPNeighbor.parse(Array(buffer[0..<length])) else { continue }
                record(neighbor, at: now)
            }
            // Over the rate: wait out the second; what arrives meanwhile waits in (or overflows) the socket buffer.
            if budget == 0 { Thread.sleep(forTimeInterval: max(0, 1 - (monotonicSeconds() - window))) }
        }
    }

    func record(_ neighbor: LLDPNeighbor, at now: Double) {
        let key = neighbor.chassisID + "\u{0}" + neighbor.portID
        lock.lock(); defer { lock.unlock() }
        read += 1
        if neighbor.ttl == 0 { heard[key] = nil; return }  // the switch says the port is going away
        heard[key] = (neighbor, now)
        if heard.count > Self.maxNeighbors, let oldest = heard.min(by: { $0.value.at < $1.value.at })?.key { heard[oldest] = nil }
    }
}
