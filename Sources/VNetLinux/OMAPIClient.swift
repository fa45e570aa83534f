import CNetlink
import Foundation
import VNetCore

/// A TCP connection to dhcpd's OMAPI port on the loopback of the namespace dhcpd runs in, after both ends
/// exchanged the protocol's introduction: it moves whole messages and knows nothing of what they say. Every
/// read and write gives up after `timeout`, so a dhcpd that hangs cannot hang the agent's apply.
public final class OMAPIConnection {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    private let socket: Int32
    private var received: [UInt8] = []
    /// What dhcpd announced (protocol version and header size); the connection is refused unless it is ours.
    public private(set) var peerIntroduction: [UInt8] = []

    public init(port: UInt16, in kernel: KernelNamespace, timeout: Double = 2) throws {
        let descriptor = vnet_socket_in_namespace(kernel.path, AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw Failure(description: "OMAPI: cannot open a socket in \(kernel): \(String(cString: strerror(-descriptor)))") }
        socket = descriptor
        var limit = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(socket, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            close(socket)
            throw Failure(description: "OMAPI: cannot connect to dhcpd on 127.0.0.1:\(port): \(reason)")
        }
        do {
            try send(OMAPIMessage.introduction)
            peerIntroduction = try read(count: 8)
            guard peerIntroduction == OMAPIMessage.introduction else {
                throw Failure(description: "OMAPI: 127.0.0.1:\(port) answered \(peerIntroduction) instead of protocol 100 with 24-byte headers (is it dhcpd?)")
            }
        } catch {
            close(socket)
            throw error
        }
    }

    deinit { close(socket) }

    /// The next whole message from dhcpd.
    public func receive() throws -> OMAPIMessage {
        while true {
            if let (message, length) = try OMAPIMessage.decode(received[...]) {
                received.removeFirst(length)
                return message
            }
            try fill()
        }
    }

    public func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let length = bytes.withUnsafeBytes { Glibc.send(socket, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if length < 0, errno == EINTR { continue }
            guard length > 0 else { throw Failure(description: "OMAPI: writing to dhcpd: \(String(cString: strerror(errno)))") }
            sent += length
        }
    }

    private func read(count: Int) throws -> [UInt8] {
        while received.count < count { try fill() }
        defer { received.removeFirst(count) }
        return Array(received[..<count])
    }

    private func fill() throws {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let length = buffer.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
        if length > 0 { received += buffer[..<length]; return }
        if length == 0 { throw Failure(description: "OMAPI: dhcpd closed the connection") }
        if errno == EINTR { return }
        throw Failure(description: errno == EAGAIN ? "OMAPI: dhcpd did not answer in time" : "OMAPI: reading from dhcpd: \(String(cString: strerror(errno)))")
    }
}

/// dhcpd's OMAPI, authenticated with the agent's key: an `OMAPIConnection` carrying an `OMAPISession`'s
/// requests. What is sent and what the answers mean is the session's; this only pairs each request with its
/// answer. A failure of any kind ends the exchange (the manager then restarts dhcpd, which converges either way).
public final class OMAPIClient {
    public typealias Failure = OMAPIConnection.Failure

    private let connection: OMAPIConnection
    private var session: OMAPISession

    /// Connects to 127.0.0.1:`port` in `kernel`'s namespace and opens the authenticator for `secret`.
    public init(port: UInt16, secret: [UInt8], in kernel: KernelNamespace, timeout: Double = 2) throws {
        connection = try OMAPIConnection(port: port, in: kernel, timeout: timeout)
        session = OMAPISession(secret: secret)
        let (id, bytes) = session.openAuthenticator()
        try connection.send(bytes)
        do {
            try session.authenticated(by: try connection.receive(), to: id)
        } catch let failure as OMAPISession.Failure {
            // The port answers OMAPI but has no key of this name: another dhcpd's OMAPI (ours could not
            // bind the port then), or a dhcpd started from an older config.
            throw Failure(description: "OMAPI on 127.0.0.1:\(port) does not know vnet's key \(DHCPDControl.keyName) (\(failure)): "
                          + "is another dhcpd with OMAPI on this port? Give the agent another --dhcpd-omapi-port")
        }
    }

    /// Makes dhcpd serve `host`: created, or, if dhcpd has a host of that name already, kept when it is this
    /// host and replaced when it is another (an earlier instance at the same address).
    public func put(_ host: DHCPDConfig.Host) throws {
        do {
            try request { $0.createHost(host) }
        } catch let failure as OMAPISession.Failure where failure.code == OMAPISession.Failure.exists {
            let found = try request { $0.findHost(named: host.declarationName) }
            if OMAPISession.host(in: found) == host { return }
            try request { $0.delete(handle: found.handle) }
            try request { $0.createHost(host) }
        }
    }

    /// Makes dhcpd forget the host of this name; one it does not have is not an error.
    public func remove(named name: String) throws {
        let found: OMAPIMessage
        do {
            found = try request { $0.findHost(named: name) }
        } catch let failure as OMAPISession.Failure where failure.code == OMAPISession.Failure.notFound {
            return
        }
        try request { $0.delete(handle: found.handle) }
    }

    /// The host dhcpd holds under this name, if any.
    public func host(named name: String) throws -> DHCPDConfig.Host? {
        do {
            return OMAPISession.host(in: try request { $0.findHost(named: name) })
        } catch let failure as OMAPISession.Failure where failure.code == OMAPISession.Failure.notFound {
            return nil
        }
    }

    @discardableResult
    private func request(_ make: (inout OMAPISession) -> (id: UInt32, bytes: [UInt8])) throws -> OMAPIMessage {
        let (id, bytes) = make(&session)
        try connection.send(bytes)
        return try session.answer(try connection.receive(), to: id)
    }
}
