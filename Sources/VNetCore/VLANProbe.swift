/// The frames of the VLAN verification: a probe and its echo, hand-built Ethernet frames carrying an 802.1Q tag
/// (or none, for the untagged control round), so a host checks what the switch does with tagged frames without
/// creating a VLAN device or assigning an address.
///
/// Layout: destination, source, [0x8100, TCI], EtherType 0x88B5 (IEEE "local experimental"), then the payload:
/// "VNVP", version 1, kind (1 probe, 2 reply), VID (2), nonce (8), sequence (4), the prober's send time in
/// nanoseconds (8), the sender's name (length byte, then UTF-8, at most 32), padded to 60 bytes. Big-endian.
public struct VLANProbe: Sendable, Equatable {
    public enum Kind: UInt8, Sendable { case probe = 1, reply = 2 }

    public static let etherType: UInt16 = 0x88B5
    static let magic: [UInt8] = Array("VNVP".utf8)
    public static let maxNameLength = 32

    public var destination: MACAddress
    public var source: MACAddress
    /// 0: untagged (the control round); 1-4094: the VID the frame is tagged with.
    public var vlan: Int
    public var kind: Kind
    public var nonce: UInt64
    public var sequence: UInt32
    public var sentNanoseconds: UInt64
    public var sender: String

    public init(destination: MACAddress, source: MACAddress, vlan: Int, kind: Kind, nonce: UInt64, sequence: UInt32,
                sentNanoseconds: UInt64, sender: String) {
        self.destination = destination; self.source = source; self.vlan = vlan; self.kind = kind
        self.nonce = nonce; self.sequence = sequence; self.sentNanoseconds = sentNanoseconds; self.sender = sender
    }

    /// The echo a responder sends back: same VID, nonce, sequence and send time, to the prober.
    public func reply(from mac: MACAddress, name: String) -> VLANProbe {
        VLANProbe(destination: source, source: mac, vlan: vlan, kind: .reply, nonce: nonce, sequence: sequence,
                  sentNanoseconds: sentNanoseconds, sender: name)
    }

    public var frame: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(80)
        func put(_ value: UInt64, _ count: Int) { for shift in stride(from: (count - 1) * 8, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) } }
        put(destination.value, 6)
        put(source.value, 6)
        if vlan != 0 { put(0x8100, 2); put(UInt64(vlan & 0x0fff), 2) }
        put(UInt64(Self.etherType), 2)
        bytes += Self.magic
        bytes.append(1)
        bytes.append(kind.rawValue)
        put(UInt64(vlan), 2)
        put(nonce, 8)
        put(UInt64(sequence), 4)
        put(sentNanoseconds, 8)
        let name = Array(sender.utf8.prefix(Self.maxNameLength))
        bytes.append(UInt8(name.count))
        bytes += name
        if bytes.count < 60 { bytes += [UInt8](repeating: 0, count: 60 - bytes.count) }
        return bytes
    }

    /// Reads a received frame. The tag is taken from the bytes when it is still inline, else from what the
    /// kernel reported (`strippedVLAN`, from PACKET_AUXDATA; nil when the frame came untagged). A frame whose
    /// tag disagrees with the VID it says it was sent on (a switch that retagged it) is refused: nil.
    public static func parse(_ frame: [UInt8], strippedVLAN: Int?) -> VLANProbe? {
        func read(_ offset: Int, _ count: Int) -> UInt64 { frame[offset..<(offset + count)].reduce(0) { $0 << 8 | UInt64($1) } }
        guard frame.count >= 14 else { return nil }
        var offset = 12
        var tag = strippedVLAN ?? 0
        if read(12, 2) == 0x8100 {
            guard frame.count >= 18 else { return nil }
            tag = Int(read(14, 2) & 0x0fff)
            offset = 16
        }
        guard read(offset, 2) == UInt64(etherType) else { return nil }
        let payload = offset + 2
        guard frame.count >= payload + 32, Array(frame[payload..<(payload + 4)]) == magic, frame[payload + 4] == 1,
              let kind = Kind(rawValue: frame[payload + 5]) else { return nil }
        let vlan = Int(read(payload + 6, 2))
        guard vlan == tag, vlan <= 4094 else { return nil }
        let nameLength = Int(frame[payload + 28])
        guard nameLength <= maxNameLength, frame.count >= payload + 29 + nameLength,
              let sender = String(validating: frame[(payload + 29)..<(payload + 29 + nameLength)], as: UTF8.self) else { return nil }
        return VLANProbe(destination: MACAddress(read(0, 6)), source: MACAddress(read(6, 6)), vlan: vlan, kind: kind,
                         nonce: read(payload + 8, 8), sequence: UInt32(read(payload + 16, 4)),
                         sentNanoseconds: read(payload + 20, 8), sender: sender)
    }
}
