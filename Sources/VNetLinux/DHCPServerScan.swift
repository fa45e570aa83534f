import CPacket
import Foundation
import VNetCore
import VNetSystem

/// One host's side of `verify-vlan --dhcp`: a DHCPDISCOVER on every VID and untagged from a raw socket on the
/// interface (no VLAN device, no address, no DHCP client), for a client MAC made up per host and VID
/// (`RogueDHCP.clientMAC`), three times half a second apart; every DHCP server reply seen on the interface
/// meanwhile is noted. Nothing is accepted: no REQUEST follows, so no lease is taken. ISC dhcpd pings an address
/// for a second before offering it (ping-check), hence the listening time.
public final class DHCPServerScan {
    public struct Failure: Error, CustomStringConvertible { public var description: String }

    let name: String
    let descriptor: Int32
    let ifindex: Int32
    let mac: MACAddress

    public init(interface: String, name: String) throws {
        if let problem = NameRules.interfaceNameProblem(interface) { throw Failure(description: "interface: \(problem)") }
        self.name = name
        var index: Int32 = 0
        var bytes = [UInt8](repeating: 0, count: 6)
        let result = interface.withCString { vnet_dhcp_scan_open($0, &index, &bytes) }
        guard result >= 0 else { throw Failure(description: "cannot open a packet socket on \(interface): \(String(cString: strerror(-result)))") }
        descriptor = result
        ifindex = index
        mac = MACAddress(bytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
    }

    deinit { close(descriptor) }

    /// At most this many replies are kept (a flood of forged replies must not grow without bound).
    public static let maxSightings = 4096

    /// Sends the DISCOVERs (from `start`, CLOCK_MONOTONIC ns) and listens for `duration` seconds; the replies
    /// seen, at most one per VID, server and client.
    public func run(vlans: [Int], duration: Double, start: UInt64? = nil) -> [RogueDHCP.Sighting] {
        let all = [0] + vlans.filter { $0 != 0 }
        let begin = max(start ?? 0, monotonicNanoseconds())
        let deadline = begin + UInt64(duration * 1e9)
        var rounds = (0..<3).map { begin + UInt64($0) * 500_000_000 }
        var transaction = UInt32.random(in: 1...UInt32.max)
        var seen: [RogueDHCP.Sighting] = []
        struct Key: Hashable { var vlan: Int; var server: UInt64; var client: UInt64 }
        var keys: Set<Key> = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        while case let now = monotonicNanoseconds(), now < deadline {
            if let due = rounds.first, due <= now {
                rounds.removeFirst()
                for vlan in all {
                    transaction &+= 1
                    let frame = DHCPDiscover.frame(source: mac, client: RogueDHCP.clientMAC(host: name, vlan: vlan), vlan: vlan, transaction: transaction)
                    _ = frame.withUnsafeBufferPointer { vnet_probe_send(descriptor, ifindex, $0.baseAddress, $0.count) }
                }
            }
            let until = min(deadline, rounds.first ?? deadline)
            _ = vnet_probe_wait(descriptor, Int32(max(1, min(50, (until - min(until, monotonicNanoseconds())) / 1_000_000))))
            while true {
                var type: Int32 = 0, tagged: Int32 = 0, tci: UInt16 = 0
                let length = buffer.withUnsafeMutableBufferPointer { vnet_probe_receive(descriptor, $0.baseAddress, $0.count, &type, &tagged, &tci) }
                guard length >= 0 else { break }
                // This host's own frames leaving are not a server it sees.
                guard type != PACKET_OUTGOING_TYPE,
                      let sighting = RogueDHCP.Sighting.parse(frame: Array(buffer[0..<length]), strippedVLAN: tagged == 1 ? Int(tci & 0x0fff) : nil),
                      all.contains(sighting.vlan) else { continue }
                let key = Key(vlan: sighting.vlan, server: sighting.serverMAC.value, client: sighting.client.value)
                if seen.count < Self.maxSightings, keys.insert(key).inserted { seen.append(sighting) }
            }
        }
        return seen
    }
}
