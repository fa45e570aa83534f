import CNetlink
import Foundation
import VNetCore

/// The host's links and IPv4 addresses read from the kernel with one rtnetlink dump each (RTM_GETLINK,
/// RTM_GETADDR), instead of `ip -json` and its JSON: an apply on a node with 500 instances spent most of its time
/// printing and parsing 500 links' JSON. Gives what `LinkObservation` gives from iproute2's output, field by
/// field (a root test compares the two on the same namespace).
public enum NetlinkObservation {
    public struct Failure: Error, CustomStringConvertible {
        public var what: String
        public var description: String { what }
    }

    // linux/rtnetlink.h and linux/if_link.h, which Swift cannot import through Glibc.
    static let getLink: UInt16 = 18, newLink: UInt16 = 16, getAddress: UInt16 = 22, newAddress: UInt16 = 20
    static let routeProtocol: Int32 = 0  // NETLINK_ROUTE
    static let done: UInt16 = 3, error: UInt16 = 2
    enum LinkAttribute: UInt16 { case address = 1, name = 3, link = 5, master = 10, linkInfo = 18, linkNetNSID = 37 }
    static let infoKind: UInt16 = 1, infoData: UInt16 = 2, vlanID: UInt16 = 1
    static let addressAddress: UInt16 = 1, addressLocal: UInt16 = 2, addressBroadcast: UInt16 = 4
    static let interfaceUp: UInt32 = 0x1

    /// Both, read in `kernel`'s network namespace.
    public static func observe(in kernel: KernelNamespace) throws(Failure) -> ([ObservedLink], [ObservedAddress]) {
        let path = kernel.path
        // struct ifinfomsg, then IFLA_EXT_MASK = RTEXT_FILTER_SKIP_STATS: without it every link's counters come
        // too, most of each message (a kernel older than 4.20 ignores the flag and sends them).
        let skipStats = [UInt8](repeating: 0, count: 16) + [8, 0, 29, 0] + withUnsafeBytes(of: UInt32(1 << 3)) { Array($0) }
        let links = try self.links(fromDump: dump(path, type: getLink, header: skipStats))
        // struct ifaddrmsg with ifa_family AF_INET: the kernel dumps IPv4 addresses only.
        let addresses = try self.addresses(fromDump: dump(path, type: getAddress, header: [UInt8(AF_INET)] + [UInt8](repeating: 0, count: 7)),
                                           names: Dictionary(links.map { ($0.index, $0.name) }, uniquingKeysWith: { first, _ in first }))
        return (links, addresses)
    }

    static func dump(_ path: String?, type: UInt16, header: [UInt8]) throws(Failure) -> [UInt8] {
        var buffer: UnsafeMutablePointer<UInt8>?
        var length = 0
        let result = header.withUnsafeBytes { bytes in
            vnet_netlink_dump(path, routeProtocol, type, bytes.baseAddress, UInt32(bytes.count), &buffer, &length)
        }
        guard result == 0, let buffer else {
            throw Failure(what: "rtnetlink dump \(type == getLink ? "RTM_GETLINK" : "RTM_GETADDR")\(path.map { " in \($0)" } ?? ""): \(String(cString: strerror(-result)))")
        }
        defer { free(buffer) }
        return Array(UnsafeBufferPointer(start: buffer, count: length))
    }

    /// The messages of a dump: type and payload (after the 16-byte nlmsghdr). Stops at NLMSG_DONE; a message
    /// whose length runs past the buffer ends the walk as malformed.
    static func messages(_ bytes: [UInt8]) throws(Failure) -> [(type: UInt16, payload: ArraySlice<UInt8>)] {
        var result: [(UInt16, ArraySlice<UInt8>)] = []
        var offset = 0
        while offset + 16 <= bytes.count {
            let length = Int(u32(bytes[...], offset)), type = u16(bytes[...], offset + 4)
            guard length >= 16, offset + length <= bytes.count else { throw Failure(what: "rtnetlink: a message of \(length) bytes at \(offset) runs past the \(bytes.count) read") }
            if type == done { break }
            result.append((type, bytes[(offset + 16)..<(offset + length)]))
            offset += (length + 3) & ~3
        }
        return result
    }

    /// The attributes among `wanted` (type without the nested and byte-order flags, value) from `start` to the
    /// end of `bytes`; an attribute running past the end ends the walk.
    static func attributes(_ bytes: ArraySlice<UInt8>, from start: Int, wanted: Set<UInt16>) -> [UInt16: ArraySlice<UInt8>] {
        var result: [UInt16: ArraySlice<UInt8>] = [:]
        var offset = start
        while offset + 4 <= bytes.endIndex {
            let length = Int(u16(bytes, offset)), type = u16(bytes, offset + 2) & 0x3FFF
            guard length >= 4, offset + length <= bytes.endIndex else { break }
            if wanted.contains(type) { result[type] = bytes[(offset + 4)..<(offset + length)] }
            offset += (length + 3) & ~3
        }
        return result
    }
    static let linkAttributes: Set<UInt16> = [LinkAttribute.address.rawValue, LinkAttribute.name.rawValue, LinkAttribute.link.rawValue,
                                              LinkAttribute.master.rawValue, LinkAttribute.linkInfo.rawValue, LinkAttribute.linkNetNSID.rawValue]

    static func string(_ value: ArraySlice<UInt8>) -> String {
        String(decoding: value.prefix { $0 != 0 }, as: UTF8.self)
    }

    public static func links(fromDump bytes: [UInt8]) throws(Failure) -> [ObservedLink] {
        struct Raw { var link: ObservedLink; var masterIndex: Int?; var parentIndex: Int?; var parentElsewhere: Bool }
        var raws: [Raw] = []
        for (type, payload) in try messages(bytes) where type == newLink && payload.count >= 16 {
            let start = payload.startIndex
            let index = Int(Int32(bitPattern: u32(payload, start + 4))), flags = u32(payload, start + 8)
            let attributes = attributes(payload, from: start + 16, wanted: linkAttributes)
            guard let name = attributes[LinkAttribute.name.rawValue].map(string) else { continue }
            var link = ObservedLink(name: name, index: index, kind: nil, mac: nil, master: nil, isUp: flags & interfaceUp != 0, vlanID: nil, parent: nil)
            if let address = attributes[LinkAttribute.address.rawValue], address.count == 6 {
                link.mac = MACAddress(address.reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
            }
            if let info = attributes[LinkAttribute.linkInfo.rawValue] {
                let nested = self.attributes(info, from: info.startIndex, wanted: [infoKind, infoData])
                link.kind = nested[infoKind].map(string)
                if link.kind == "vlan", let data = nested[infoData], let id = self.attributes(data, from: data.startIndex, wanted: [vlanID])[vlanID], id.count >= 2 {
                    link.vlanID = Int(u16(id, id.startIndex))
                }
            }
            raws.append(Raw(link: link, masterIndex: attributes[LinkAttribute.master.rawValue].flatMap { $0.count >= 4 ? Int(u32($0, $0.startIndex)) : nil },
                            parentIndex: attributes[LinkAttribute.link.rawValue].flatMap { $0.count >= 4 ? Int(u32($0, $0.startIndex)) : nil },
                            parentElsewhere: attributes[LinkAttribute.linkNetNSID.rawValue] != nil))
        }
        let names = Dictionary(raws.map { ($0.link.index, $0.link.name) }, uniquingKeysWith: { first, _ in first })
        return raws.map { raw in
            var link = raw.link
            link.master = raw.masterIndex.flatMap { names[$0] }
            // As iproute2 names it: the lower device's name when it is in this namespace; one in another (a
            // veth's peer moved away) is not named.
            if let parent = raw.parentIndex, parent != 0, !raw.parentElsewhere { link.parent = names[parent] ?? "if\(parent)" }
            return link
        }
    }

    public static func addresses(fromDump bytes: [UInt8], names: [Int: String]) throws(Failure) -> [ObservedAddress] {
        var result: [ObservedAddress] = []
        for (type, payload) in try messages(bytes) where type == newAddress && payload.count >= 8 {
            let start = payload.startIndex
            guard payload[start] == UInt8(AF_INET), let device = names[Int(u32(payload, start + 4))] else { continue }
            let attributes = attributes(payload, from: start + 8, wanted: [addressAddress, addressLocal, addressBroadcast])
            func address(_ key: UInt16) -> IPv4Address? {
                guard let value = attributes[key], value.count == 4 else { return nil }
                return IPv4Address(value.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
            }
            guard let local = address(addressLocal) ?? address(addressAddress) else { continue }
            result.append(ObservedAddress(device: device, address: local, prefixLength: Int(payload[start + 1]), broadcast: address(addressBroadcast)))
        }
        return result
    }

    // Netlink's own fields are in host byte order. `index` is the slice's own (absolute) index.
    static func u16(_ bytes: ArraySlice<UInt8>, _ index: Int) -> UInt16 {
        bytes[index..<(index + 2)].withUnsafeBytes { $0.loadUnaligned(as: UInt16.self) }
    }
    static func u32(_ bytes: ArraySlice<UInt8>, _ index: Int) -> UInt32 {
        bytes[index..<(index + 4)].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
    }
}
