import Foundation
import VNetBus
import VNetSystem
import VNetCore

/// Echo requests over one raw ICMP socket (this thread's namespace): many addresses at once, no process each.
final class ICMPPinger {
    let fd: Int32
    let identifier = UInt16(truncatingIfNeeded: getpid())
    var sequence: UInt16 = 0

    init() throws {
        fd = socket(AF_INET, Int32(SOCK_RAW.rawValue), Int32(IPPROTO_ICMP))
        guard fd >= 0 else { throw BusError("cannot open a raw ICMP socket: \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd) }

    /// Sends one echo request to each address; returns those that answered within `waitSeconds`.
    func ping(_ addresses: [IPv4Address], waitSeconds: Double) -> Set<IPv4Address> {
        guard !addresses.isEmpty else { Thread.sleep(forTimeInterval: waitSeconds); return [] }
        for address in addresses {
            sequence &+= 1
            var packet: [UInt8] = [8, 0, 0, 0, UInt8(identifier >> 8), UInt8(identifier & 0xff), UInt8(sequence >> 8), UInt8(sequence & 0xff)]
            packet += [UInt8](repeating: 0x42, count: 16)
            var sum: UInt32 = 0
            for index in stride(from: 0, to: packet.count, by: 2) { sum += UInt32(packet[index]) << 8 | UInt32(packet[index + 1]) }
            while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
            let checksum = ~UInt16(sum)
            packet[2] = UInt8(checksum >> 8); packet[3] = UInt8(checksum & 0xff)
            var target = sockaddr_in()
            target.sin_family = sa_family_t(AF_INET)
            target.sin_addr.s_addr = address.value.bigEndian
            _ = withUnsafePointer(to: &target) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, packet, packet.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        var answered: Set<IPv4Address> = []
        let deadline = monotonicSeconds() + waitSeconds
        var buffer = [UInt8](repeating: 0, count: 1500)
        while monotonicSeconds() < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32(max(1, (deadline - monotonicSeconds()) * 1000))) > 0 else { continue }
            let length = recv(fd, &buffer, buffer.count, 0)
            // A raw ICMP socket reads the IP header too: echo reply (type 0) with our identifier.
            guard length >= 28 else { continue }
            let headerLength = Int(buffer[0] & 0x0f) * 4
            guard length >= headerLength + 8, buffer[headerLength] == 0,
                  UInt16(buffer[headerLength + 4]) << 8 | UInt16(buffer[headerLength + 5]) == identifier else { continue }
            answered.insert(IPv4Address(buffer[12], buffer[13], buffer[14], buffer[15]))
        }
        return answered
    }
}
