import CPacket
import Foundation
import VNetSystem
import VNetCore

/// SYSTEM mode: instances get their addresses from a DHCP server outside the project, so a node learns each
/// instance's address from the DHCP acknowledgement that gave it, seen on the host (on the bridge port it came
/// in by, or on the vif it left by). The kernel filters the packet socket down to DHCP replies (`CPacket`),
/// so nothing else is copied to the agent. Needs CAP_NET_RAW.
///
/// What was learned is kept in `file`, so a restarted agent still knows the addresses of instances whose
/// leases it did not see again.
public final class AddressLearner {
    let file: String?
    private var descriptor: Int32 = -1
    /// The last acknowledged address per MAC.
    private(set) var byMAC: [MACAddress: IPv4Address] = [:]
    private var buffer = [UInt8](repeating: 0, count: 2048)

    /// Opens the socket; throws with the reason (most likely: no CAP_NET_RAW).
    public init(file: String?) throws {
        self.file = file
        let result = vnet_dhcp_snoop_open()
        guard result >= 0 else {
            throw LearnerError("cannot open a packet socket to learn addresses from DHCP: \(String(cString: strerror(-result)))")
        }
        descriptor = result
        if let file, let data = FileManager.default.contents(atPath: file),
           let saved = try? JSONDecoder().decode([String: String].self, from: data) {
            for (mac, address) in saved {
                if let mac = MACAddress(mac), let address = IPv4Address(address) { byMAC[mac] = address }
            }
        }
    }

    deinit { if descriptor >= 0 { close(descriptor) } }

    /// Reads what arrived since the last call; true when an address was learned or changed.
    @discardableResult
    public func drain() -> Bool {
        var changed = false
        for _ in 0..<256 {
            var ifindex: Int32 = 0, type: Int32 = 0
            let length = buffer.withUnsafeMutableBufferPointer { vnet_packet_receive(descriptor, $0.baseAddress, $0.count, &ifindex, &type) }
            guard length >= 0 else { break }
            guard let reply = DHCPReply.parse(ipPacket: Array(buffer[0..<length])), reply.messageType == .ack,
                  reply.address != IPv4Address(0) else { continue }
            if byMAC[reply.mac] != reply.address {
                byMAC[reply.mac] = reply.address
                changed = true
            }
        }
        if changed { save() }
        return changed
    }

    /// The addresses of these vifs' instances that are known.
    public func learned(for vifs: [HostNetworkState.Vif]) -> [LearnedAddress] {
        vifs.compactMap { vif in byMAC[vif.mac].map { LearnedAddress(instance: vif.instance, mac: vif.mac, address: $0) } }.sorted()
    }

    /// Forgets MACs no vif has any more (terminated instances), so a reused MAC starts afresh.
    public func keepOnly(_ macs: Set<MACAddress>) {
        let before = byMAC.count
        byMAC = byMAC.filter { macs.contains($0.key) }
        if byMAC.count != before { save() }
    }

    func save() {
        guard let file, let data = try? JSONEncoder().encode(Dictionary(uniqueKeysWithValues: byMAC.map { ($0.key.description, $0.value.description) })) else { return }
        writeAtomically(data, to: file)
    }
}

public struct LearnerError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
