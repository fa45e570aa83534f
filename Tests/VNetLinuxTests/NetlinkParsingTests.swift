import Testing
import VNetCore
@testable import VNetLinux

/// The rtnetlink parser on hand-built dumps: what a kernel without 802.1Q here cannot send (a VLAN device and
/// its id), and bytes that are not a well-formed dump (cut messages, attributes running past their message).
@Suite("rtnetlink dump parsing")
struct NetlinkParsingTests {
    static func attribute(_ type: UInt16, _ value: [UInt8]) -> [UInt8] {
        let length = UInt16(4 + value.count)
        var bytes = withUnsafeBytes(of: length) { Array($0) } + withUnsafeBytes(of: type) { Array($0) } + value
        while bytes.count % 4 != 0 { bytes.append(0) }
        return bytes
    }
    static func u32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }
    static func name(_ text: String) -> [UInt8] { Array(text.utf8) + [0] }

    static func link(index: UInt32, flags: UInt32, _ attributes: [UInt8]) -> [UInt8] {
        let payload = [0, 0, 1, 0] + u32(index) + u32(flags) + u32(0) + attributes
        return u32(UInt32(16 + payload.count)) + withUnsafeBytes(of: UInt16(16)) { Array($0) } + [0x02, 0x00] + u32(1) + u32(0) + payload
    }
    static let done = u32(20) + withUnsafeBytes(of: UInt16(3)) { Array($0) } + [0x02, 0x00] + u32(1) + u32(0) + u32(0)

    @Test func aVLANDeviceIsReadWithItsIDAndParent() throws {
        let eth0 = Self.link(index: 2, flags: 1, Self.attribute(3, Self.name("eth0")) + Self.attribute(1, [0x52, 0x54, 0, 0x12, 0x34, 0x56]))
        let info = Self.attribute(1, Self.name("vlan")) + Self.attribute(2 | 0x8000, Self.attribute(1, [20, 0]))
        let vlan = Self.link(index: 7, flags: 0, Self.attribute(3, Self.name("eth0.20")) + Self.attribute(5, Self.u32(2))
                              + Self.attribute(10, Self.u32(9)) + Self.attribute(18 | 0x8000, info))
        let bridge = Self.link(index: 9, flags: 1, Self.attribute(3, Self.name("eucabr20")) + Self.attribute(18 | 0x8000, Self.attribute(1, Self.name("bridge"))))
        let links = try NetlinkObservation.links(fromDump: eth0 + vlan + bridge + Self.done)
        #expect(links == [
            ObservedLink(name: "eth0", index: 2, kind: nil, mac: MACAddress("52:54:00:12:34:56"), master: nil, isUp: true, vlanID: nil, parent: nil),
            ObservedLink(name: "eth0.20", index: 7, kind: "vlan", mac: nil, master: "eucabr20", isUp: false, vlanID: 20, parent: "eth0"),
            ObservedLink(name: "eucabr20", index: 9, kind: "bridge", mac: nil, master: nil, isUp: true, vlanID: nil, parent: nil),
        ])
    }

    @Test func bytesThatAreNotADumpAreRefusedOrIgnoredNeverTrusted() throws {
        let eth0 = Self.link(index: 2, flags: 1, Self.attribute(3, Self.name("eth0")))
        // A message whose length runs past what was read.
        #expect(throws: NetlinkObservation.Failure.self) { try NetlinkObservation.links(fromDump: Array(eth0.dropLast(4))) }
        // An attribute whose length runs past its message ends that message's attributes; the name before it stands.
        var cut = Self.link(index: 3, flags: 0, Self.attribute(3, Self.name("br0")) + [0xFF, 0x00, 0x01, 0x00])
        #expect(try NetlinkObservation.links(fromDump: cut).map(\.name) == ["br0"])
        // A link message too short for its header, and one without a name, are skipped.
        cut = Self.u32(20) + withUnsafeBytes(of: UInt16(16)) { Array($0) } + [0, 0] + Self.u32(1) + Self.u32(0) + Self.u32(0)
        #expect(try NetlinkObservation.links(fromDump: cut + Self.link(index: 4, flags: 0, [])).isEmpty)
        // Every prefix of a good dump parses or throws; none traps.
        let good = eth0 + Self.link(index: 5, flags: 1, Self.attribute(3, Self.name("vn-1")) + Self.attribute(10, Self.u32(2)))
        for length in 0...good.count { _ = try? NetlinkObservation.links(fromDump: Array(good.prefix(length))) }
    }
}
