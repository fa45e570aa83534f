import Foundation
import VNetCore

/// Serves `GET /metrics` (Prometheus text) over HTTP/1.0 on one address, from a thread of its own.
///
/// Deliberately small: one connection at a time, a request read with a 2 s deadline, the answer written and
/// the connection closed; Prometheus scrapes every few seconds and this is all it needs. Off unless the
/// daemon is given `--metrics`; the examples bind it to loopback.
public final class MetricsServer: @unchecked Sendable {
    public let registry: MetricsRegistry
    /// The address really bound (port 0 asks the kernel for one).
    public private(set) var address = ""
    let descriptor: Int32
    let stopFlag = StopFlag()
    var thread: Thread?

    /// `listen` is IPV4:PORT.
    public init(listen: String, registry: MetricsRegistry) throws {
        self.registry = registry
        guard let colon = listen.lastIndex(of: ":"), let port = UInt16(listen[listen.index(after: colon)...]),
              let host = IPv4Address(String(listen[..<colon])) else {
            throw BusError("--metrics: '\(listen)' is not IPV4:PORT (for example 127.0.0.1:9640)")
        }
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw BusError("--metrics: socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = port.bigEndian
        socketAddress.sin_addr.s_addr = host.value.bigEndian
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(descriptor, 16) == 0 else {
            let reason = String(cString: strerror(errno))
            close(descriptor)
            throw BusError("--metrics: cannot listen on \(listen): \(reason)")
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) } }
        address = "\(host):\(UInt16(bigEndian: actual.sin_port))"
    }

    public func start() {
        let thread = Thread { [self] in serve() }
        thread.name = "metrics"
        self.thread = thread
        thread.start()
    }

    public func stop() {
        stopFlag.stop()
    }

    func serve() {
        while !stopFlag.isStopped {
            var waiting = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&waiting, 1, 200) > 0 else { continue }
            let connection = accept(descriptor, nil, nil)
            guard connection >= 0 else { continue }
            answer(connection)
            close(connection)
        }
        close(descriptor)
    }

    func answer(_ connection: Int32) {
        var deadline = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &deadline, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &deadline, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while request.count < 16_384 {
            let count = read(connection, &buffer, buffer.count)
            guard count > 0 else { break }
            request += buffer[..<count]
            if String(decoding: request, as: UTF8.self).contains("\r\n\r\n") { break }  // the end of the headers
        }
        let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self).split(separator: " ")
        let (status, type, body): (String, String, String)
        if line.count >= 2, line[0] == "GET", line[1] == "/metrics" || line[1].hasPrefix("/metrics?") {
            (status, type, body) = ("200 OK", PrometheusText.contentType, registry.render())
        } else if line.count >= 2, line[0] != "GET" {
            (status, type, body) = ("405 Method Not Allowed", "text/plain", "only GET /metrics\n")
        } else {
            (status, type, body) = ("404 Not Found", "text/plain", "metrics are at /metrics\n")
        }
        let bytes = Array(body.utf8)
        let head = "HTTP/1.0 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(bytes.count)\r\nConnection: close\r\n\r\n"
        let out = Array(head.utf8) + bytes
        var offset = 0
        while offset < out.count {
            // MSG_NOSIGNAL: a write to a scraper that hung up must not raise SIGPIPE, whose default ends the daemon.
            let written = out.withUnsafeBytes { send(connection, $0.baseAddress! + offset, out.count - offset, Int32(MSG_NOSIGNAL)) }
            guard written > 0 else { return }
            offset += written
        }
    }
}
