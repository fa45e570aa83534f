import Foundation
import VNetCore

/// One network interface as `ip -json -details link show` reports it: what the backend needs to know.
public struct ObservedLink: Sendable, Equatable {
    public var name: String
    public var index: Int
    public var kind: String?        // "bridge", "vlan", "tun", "veth", nil for a plain device
    public var mac: MACAddress?
    public var master: String?
    public var isUp: Bool
    public var vlanID: Int?
    public var parent: String?      // a VLAN device's lower device
}

public struct ObservedAddress: Sendable, Equatable {
    public var device: String
    public var address: IPv4Address
    public var prefixLength: Int
    public var broadcast: IPv4Address?
}

/// Parses iproute2's JSON output. Tolerant of fields it does not know, strict about the ones it uses.
public enum LinkObservation {
    public static func links(fromJSON bytes: [UInt8]) throws -> [ObservedLink] {
        guard let entries = try JSONSerialization.jsonObject(with: Data(bytes)) as? [[String: Any]] else { return [] }
        return entries.compactMap { entry in
            guard let name = entry["ifname"] as? String, let index = entry["ifindex"] as? Int else { return nil }
            let info = entry["linkinfo"] as? [String: Any]
            let data = info?["info_data"] as? [String: Any]
            let flags = entry["flags"] as? [String] ?? []
            return ObservedLink(name: name, index: index, kind: info?["info_kind"] as? String,
                                mac: (entry["address"] as? String).flatMap { MACAddress($0) },
                                master: entry["master"] as? String, isUp: flags.contains("UP"),
                                vlanID: data?["id"] as? Int, parent: entry["link"] as? String)
        }
    }

    public static func addresses(fromJSON bytes: [UInt8]) throws -> [ObservedAddress] {
        guard let entries = try JSONSerialization.jsonObject(with: Data(bytes)) as? [[String: Any]] else { return [] }
        var result: [ObservedAddress] = []
        for entry in entries {
            guard let device = entry["ifname"] as? String, let infos = entry["addr_info"] as? [[String: Any]] else { continue }
            for info in infos where info["family"] as? String == "inet" {
                guard let local = (info["local"] as? String).flatMap({ IPv4Address($0) }), let prefix = info["prefixlen"] as? Int else { continue }
                result.append(ObservedAddress(device: device, address: local, prefixLength: prefix,
                                              broadcast: (info["broadcast"] as? String).flatMap { IPv4Address($0) }))
            }
        }
        return result
    }
}
