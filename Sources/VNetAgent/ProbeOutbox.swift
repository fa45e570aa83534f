import Foundation
import VNetCore
import VNetHost
import VNetProto

/// A finished probe waiting for the agent's loop to send it (the loop owns the sockets).
final class ProbeOutbox: @unchecked Sendable {
    private let lock = NSLock()
    private var reports: [Vnet_V1_ProbeReport] = []
    func put(_ report: Vnet_V1_ProbeReport) { lock.lock(); reports.append(report); lock.unlock() }
    func take() -> [Vnet_V1_ProbeReport] { lock.lock(); defer { lock.unlock() }; let all = reports; reports = []; return all }
}

extension VLANVerification.Observation {
    var wire: Vnet_V1_ProbeResult {
        var result = Vnet_V1_ProbeResult()
        result.peer = peer
        result.vlan = UInt32(vlan)
        result.sent = UInt32(sent)
        result.received = UInt32(received)
        result.replies = UInt32(replies)
        result.rttUs = rttMicroseconds
        if let mtu {
            result.mtuPassed = UInt32(mtu.passed)
            result.mtuFailed = UInt32(mtu.failed ?? 0)
        }
        return result
    }
}

extension RogueDHCP.Sighting {
    var wire: Vnet_V1_DhcpSighting {
        var wire = Vnet_V1_DhcpSighting()
        wire.vlan = UInt32(vlan)
        wire.serverMac = serverMAC.value
        wire.serverIp = serverIP.value
        wire.identifier = identifier?.value ?? 0
        wire.offered = offered.value
        wire.client = client.value
        return wire
    }
}

/// The MAC of an interface, from sysfs (nil when it cannot be read).
func interfaceMAC(_ name: String) -> MACAddress? {
    guard NameRules.interfaceNameProblem(name) == nil,
          let text = try? String(contentsOfFile: "/sys/class/net/\(name)/address", encoding: .utf8) else { return nil }
    return MACAddress(text.trimmingCharacters(in: .whitespacesAndNewlines))
}
