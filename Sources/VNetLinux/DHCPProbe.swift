import CNetlink
import Foundation
import VNetCore
import VNetSystem

/// Asks the DHCP servers on a link for an offer to one MAC, as a client would, without taking an address:
/// DHCPDISCOVER broadcast from UDP port 68 out of `interface`, again every `interval` until an offer for that
/// MAC arrives or `timeout` passes. It measures how soon a server serves a MAC (a client's own retry backoff
/// would hide that) and shows which server answers. Nothing is configured: no address, no lease requested.
public enum DHCPProbe {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The first offer for `mac`, or nil when none came within `timeout` seconds.
    public static func offer(for mac: MACAddress, on interface: String, in kernel: KernelNamespace,
                             timeout: Double, interval: Double = 0.005) throws -> DHCPReply? {
        let socket = vnet_socket_in_namespace(kernel.path, AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard socket >= 0 else { throw Failure(description: "DHCP probe: cannot open a socket in \(kernel): \(String(cString: strerror(-socket)))") }
        defer { close(socket) }
        var one: Int32 = 1
        setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(socket, SOL_SOCKET, SO_BROADCAST, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = interface.withCString { setsockopt(socket, SOL_SOCKET, SO_BINDTODEVICE, $0, socklen_t(strlen($0) + 1)) }
        guard bound == 0 else { throw Failure(description: "DHCP probe: cannot bind to \(interface): \(String(cString: strerror(errno)))") }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_port = UInt16(68).bigEndian
        guard withUnsafePointer(to: &local, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }) == 0 else {
            throw Failure(description: "DHCP probe: cannot bind UDP port 68 in \(kernel) (a DHCP client running there?): \(String(cString: strerror(errno)))")
        }
        var server = sockaddr_in()
        server.sin_family = sa_family_t(AF_INET)
        server.sin_port = UInt16(67).bigEndian
        server.sin_addr.s_addr = UInt32(0xffff_ffff)
        let deadline = monotonicSeconds() + timeout
        var buffer = [UInt8](repeating: 0, count: 2048)
        var transaction = UInt32.random(in: 1...UInt32.max)
        while monotonicSeconds() < deadline {
            transaction &+= 1
            let discover = DHCPDiscover.bytes(mac: mac, transaction: transaction)
            let sent = discover.withUnsafeBytes { bytes in
                withUnsafePointer(to: &server) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(socket, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            }
            guard sent == discover.count else { throw Failure(description: "DHCP probe: cannot send on \(interface): \(String(cString: strerror(errno)))") }
            let wait = monotonicSeconds() + min(interval, max(0, deadline - monotonicSeconds()))
            while case let left = wait - monotonicSeconds(), left > 0 {
                var poll = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
                guard Glibc.poll(&poll, 1, Int32(left * 1000) + 1) > 0 else { break }
                let length = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
                guard length > 0 else { continue }
                if let reply = DHCPReply.parse(bootp: buffer[..<length]), reply.mac == mac, reply.messageType == .offer { return reply }
            }
        }
        return nil
    }
}
