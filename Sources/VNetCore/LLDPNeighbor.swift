/// The switch port a host's VNET_INTERFACE is plugged into, as the switch announces it in LLDP (IEEE 802.1AB):
/// EtherType 0x88cc, a list of TLVs (7 bits of type, 9 of length). Read here: chassis ID, port ID, TTL, port
/// description, system name, and the organisational TLVs that matter to VLAN checks: 802.1's port VLAN ID and
/// VLAN names (the VLANs the port carries, where the switch says so) and 802.3's maximum frame size. Every
/// length is checked (this comes off the wire, from anyone on the segment); text is kept printable and short.
/// Pure.
public struct LLDPNeighbor: Sendable, Equatable, Hashable {
    public static let etherType: UInt16 = 0x88cc

    public var chassisID: String
    public var portID: String
    /// Seconds the switch says this holds (0: the switch is leaving).
    public var ttl: Int
    public var systemName: String?
    public var portDescription: String?
    /// 802.1: the port's VLAN ID for untagged frames.
    public var portVLAN: Int?
    /// 802.1: the VLANs the port announces by name (VID -> name), when it announces any.
    public var vlans: [Int: String]
    /// 802.3: the largest frame the port takes, Ethernet header and FCS included (1518 for an MTU of 1500).
    public var maxFrameSize: Int?

    public init(chassisID: String, portID: String, ttl: Int, systemName: String? = nil, portDescription: String? = nil,
                portVLAN: Int? = nil, vlans: [Int: String] = [:], maxFrameSize: Int? = nil) {
        self.chassisID = chassisID; self.portID = portID; self.ttl = ttl; self.systemName = systemName
        self.portDescription = portDescription; self.portVLAN = portVLAN; self.vlans = vlans; self.maxFrameSize = maxFrameSize
    }

    /// How an operator names the port: the switch (its system name, else its chassis ID) and the port (its ID,
    /// or its description when the ID is only a MAC address): "sw1 Eth1/7".
    public var label: String {
        let port = portIDIsMAC ? (portDescription ?? portID) : portID
        return "\(systemName ?? chassisID) \(port)"
    }

    /// A host as reports name it: with its switch port when its agent heard one ("n3 (sw1 Eth1/7)").
    public static func name(_ host: String, ports: [String: LLDPNeighbor]) -> String {
        ports[host].map { "\(host) (\($0.label))" } ?? host
    }

    var portIDIsMAC: Bool { MACAddress(portID) != nil }

    /// The payload (what an MTU counts) the maximum frame size leaves: less the Ethernet header and FCS, and a
    /// tag's 4 bytes for a tagged frame (1518 -> 1500 untagged, 1496 tagged). Switches differ in whether they
    /// count the tag, so a comparison with what was measured allows those 4 bytes.
    public func payload(tagged: Bool) -> Int? { maxFrameSize.map { $0 - 18 - (tagged ? 4 : 0) } }

    /// The frame a switch port would send to announce this (to LLDP's nearest-bridge address, from `source`):
    /// the inverse of `parse`. A chassis or port ID that reads as a MAC goes as one (subtypes 4 and 3), any
    /// other as a locally assigned string (7); text longer than a TLV takes is cut.
    public func frame(source: MACAddress) -> [UInt8] {
        func tlv(_ type: Int, _ value: [UInt8]) -> [UInt8] {
            let value = Array(value.prefix(511))
            return [UInt8(type << 1 | value.count >> 8), UInt8(value.count & 0xff)] + value
        }
        func id(_ text: String, macSubtype: UInt8) -> [UInt8] {
            MACAddress(text).map { [macSubtype] + $0.bytes } ?? [7] + Array(text.utf8.prefix(255))
        }
        var frame: [UInt8] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e] + source.bytes + [0x88, 0xcc]
        frame += tlv(1, id(chassisID, macSubtype: 4)) + tlv(2, id(portID, macSubtype: 3)) + tlv(3, [UInt8(ttl >> 8 & 0xff), UInt8(ttl & 0xff)])
        if let portDescription { frame += tlv(4, Array(portDescription.utf8.prefix(255))) }
        if let systemName { frame += tlv(5, Array(systemName.utf8.prefix(255))) }
        if let portVLAN { frame += tlv(127, [0x00, 0x80, 0xc2, 1, UInt8(portVLAN >> 8), UInt8(portVLAN & 0xff)]) }
        for (vid, name) in vlans.sorted(by: { $0.key < $1.key }) {
            let bytes = Array(name.utf8.prefix(32))
            frame += tlv(127, [0x00, 0x80, 0xc2, 3, UInt8(vid >> 8), UInt8(vid & 0xff), UInt8(bytes.count)] + bytes)
        }
        if let maxFrameSize { frame += tlv(127, [0x00, 0x12, 0x0f, 4, UInt8(maxFrameSize >> 8 & 0xff), UInt8(maxFrameSize & 0xff)]) }
        return frame + tlv(0, [])
    }

    /// Reads one frame as received (destination, source, [tag], 0x88cc, TLVs); nil unless it is LLDP with
    /// the three mandatory TLVs first, in order, and every TLV within the frame.
    public static func parse(_ frame: [UInt8]) -> LLDPNeighbor? {
        guard frame.count >= 14 else { return nil }
        var offset = 12
        if frame[12] == 0x81, frame[13] == 0x00 { offset = 16 }
        guard frame.count >= offset + 2, UInt16(frame[offset]) << 8 | UInt16(frame[offset + 1]) == etherType else { return nil }
        var index = offset + 2
        var chassis: String?, port: String?, ttl: Int?
        var neighbor = LLDPNeighbor(chassisID: "", portID: "", ttl: 0)
        var position = 0
        while index + 2 <= frame.count {
            let type = Int(frame[index] >> 1)
            let length = Int(frame[index] & 1) << 8 | Int(frame[index + 1])
            let value = index + 2
            guard value + length <= frame.count else { return nil }
            let bytes = Array(frame[value..<(value + length)])
            index = value + length
            // Chassis ID, port ID and TTL come first, in that order (802.1AB 8.2).
            switch (position, type) {
            case (0, 1): guard let text = identifier(bytes, macSubtype: 4) else { return nil }; chassis = text
            case (1, 2): guard let text = identifier(bytes, macSubtype: 3) else { return nil }; port = text
            case (2, 3): guard length == 2 else { return nil }; ttl = Int(bytes[0]) << 8 | Int(bytes[1])
            case (0..<3, _): return nil
            default:
                switch type {
                case 0: break
                case 4: neighbor.portDescription = text(bytes)
                case 5: neighbor.systemName = text(bytes)
                case 127: organisational(bytes, into: &neighbor)
                default: break
                }
            }
            if type == 0 { break }
            position += 1
        }
        guard let chassis, let port, let ttl else { return nil }
        neighbor.chassisID = chassis
        neighbor.portID = port
        neighbor.ttl = ttl
        return neighbor
    }

    /// A chassis or port ID: a subtype, then the ID. A MAC address (chassis subtype 4, port subtype 3) as
    /// text; anything else as printable text, or hex when it is not.
    static func identifier(_ bytes: [UInt8], macSubtype: UInt8) -> String? {
        guard bytes.count >= 2, bytes.count <= 256 else { return nil }
        let id = Array(bytes[1...])
        if bytes[0] == macSubtype, id.count == 6 { return MACAddress(id.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }).description }
        return text(id) ?? id.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined(separator: ":")
    }

    /// UTF-8 text without control characters, at most 255 bytes; nil when it is not.
    static func text(_ bytes: [UInt8]) -> String? {
        guard !bytes.isEmpty, bytes.count <= 255, let text = String(validating: bytes, as: UTF8.self),
              !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else { return nil }
        return text
    }

    static func organisational(_ bytes: [UInt8], into neighbor: inout LLDPNeighbor) {
        guard bytes.count >= 4 else { return }
        let oui = Array(bytes[0..<3]), subtype = bytes[3], info = Array(bytes[4...])
        switch (oui, subtype) {
        case ([0x00, 0x80, 0xc2], 1) where info.count == 2:
            let vid = Int(info[0]) << 8 | Int(info[1])
            if (1...4094).contains(vid) { neighbor.portVLAN = vid }
        case ([0x00, 0x80, 0xc2], 3) where info.count >= 3:
            let vid = Int(info[0]) << 8 | Int(info[1]), length = Int(info[2])
            guard (1...4094).contains(vid), info.count == 3 + length, neighbor.vlans.count < 4094 else { return }
            neighbor.vlans[vid] = text(Array(info[3...])) ?? ""
        case ([0x00, 0x12, 0x0f], 4) where info.count == 2:
            let size = Int(info[0]) << 8 | Int(info[1])
            if size >= 64 { neighbor.maxFrameSize = size }
        default: break
        }
    }
}
