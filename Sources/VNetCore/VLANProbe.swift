/// The frames of the VLAN verification: a probe and its echo, hand-built Ethernet frames carrying an 802.1Q tag
/// (or none, for the untagged control round), so a host checks what the switch does with tagged frames without
/// creating a VLAN device or assigning an address.
///
/// Layout: destination, source, [0x8100, TCI], EtherType 0x88B5 (IEEE "local experimental"), then the payload:
/// "VNVP", version 1, kind (1 probe, 2 reply, 3 done), VID (2), nonce (8), sequence (4), the prober's send time
/// in nanoseconds (8), the sender's name (length byte, then UTF-8, at most 32), the size (2), padded to 60 bytes
/// (or to the size). Big-endian.
///
/// The size makes a probe an MTU probe (`verify-vlan --mtu`): the frame is padded so that what follows the
/// Ethernet header and tag (the part an interface's MTU limits) is exactly `size` bytes; a receiver believes it
/// only when it arrived whole, and acknowledges it with a small reply carrying the same size, so the answer
/// says which direction carried the big frame. 0: an ordinary probe (frames of earlier versions read as 0).
/// `done`: a host's probing is over (it no longer needs answers); peers may end once every peer said so.
public struct VLANProbe: Sendable, Equatable {
    public enum Kind: UInt8, Sendable { case probe = 1, reply = 2, done = 3 }

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
    /// An MTU probe's size (the bytes after the Ethernet header and tag), or what an MTU reply acknowledges; 0:
    /// an ordinary probe.
    public var size: Int

    /// The largest size a frame can say (the field's 16 bits).
    public static let maxSize = 65535

    public init(destination: MACAddress, source: MACAddress, vlan: Int, kind: Kind, nonce: UInt64, sequence: UInt32,
                sentNanoseconds: UInt64, sender: String, size: Int = 0) {
        self.destination = destination; self.source = source; self.vlan = vlan; self.kind = kind
        self.nonce = nonce; self.sequence = sequence; self.sentNanoseconds = sentNanoseconds; self.sender = sender
        self.size = size
    }

    /// The echo a responder sends back: same VID, nonce, sequence, send time and size, to the prober. Always a
    /// small frame: an MTU probe's answer says the big frame arrived, it does not test the way back.
    public func reply(from mac: MACAddress, name: String) -> VLANProbe {
        VLANProbe(destination: source, source: mac, vlan: vlan, kind: .reply, nonce: nonce, sequence: sequence,
                  sentNanoseconds: sentNanoseconds, sender: name, size: size)
    }

    /// The least an MTU probe from a sender of this name can be: its fields, and at least what fills the
    /// 60-byte minimum frame untagged.
    public static func smallestSize(sender: String) -> Int { max(46, 31 + min(sender.utf8.count, maxNameLength)) }

    public var frame: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(kind == .probe ? max(80, size + 18) : 80)
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
        put(UInt64(size & Self.maxSize), 2)
        // An MTU probe fills the part an MTU limits: everything after the Ethernet header (and tag).
        let header = vlan != 0 ? 18 : 14
        let length = kind == .probe && size > 0 ? max(60, header + size) : 60
        if bytes.count < length { bytes += [UInt8](repeating: 0, count: length - bytes.count) }
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
        let sizeAt = payload + 29 + nameLength
        let size = frame.count >= sizeAt + 2 ? Int(read(sizeAt, 2)) : 0
        // An MTU probe counts only whole: the bytes after the Ethernet header and tag are exactly its size.
        if kind == .probe, size > 0, frame.count - payload != size { return nil }
        return VLANProbe(destination: MACAddress(read(0, 6)), source: MACAddress(read(6, 6)), vlan: vlan, kind: kind,
                         nonce: read(payload + 8, 8), sequence: UInt32(read(payload + 16, 4)),
                         sentNanoseconds: read(payload + 20, 8), sender: sender, size: size)
    }
}
