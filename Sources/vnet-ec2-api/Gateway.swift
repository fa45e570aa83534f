import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import VNetBus
import VNetEC2
import VNetSystem

/// What every connection shares: the verifier, the service, the way to the coordinator, the limits, and
/// the metrics and log.
final class Gateway: @unchecked Sendable {
    let verifier: SigV4Verifier
    let service = EC2Service()
    let pool: BusPool
    let workers: NIOThreadPool
    let limits: Limits
    let metrics: MetricsRegistry
    let log = Log.logger("ec2-api")
    private let lock = NSLock()
    private var connections = 0

    struct Limits {
        /// A body larger than this is refused before it is read (EC2's own limit for Query requests is
        /// far smaller than any reason to send more).
        var maxBody = 1 << 20
        /// A request must arrive whole within this many seconds of its first byte: slow clients cannot
        /// hold a connection (and a worker) for ever.
        var requestTimeout: Int64 = 10
        /// A connection with nothing in flight is closed after this many seconds (a request whose head
        /// trickles in slower than that is cut off with it).
        var idleTimeout: Int64 = 30
        var maxConnections = 512
    }

    init(verifier: SigV4Verifier, pool: BusPool, workers: NIOThreadPool, limits: Limits, metrics: MetricsRegistry) {
        self.verifier = verifier
        self.pool = pool
        self.workers = workers
        self.limits = limits
        self.metrics = metrics
        metrics.declare("vnet_ec2_requests_total", .counter, "EC2 requests answered, by action and EC2 error code (\"\" for success).")
        metrics.declare("vnet_ec2_request_seconds", .histogram, "Time from a request's last byte to its answer, by action.")
        metrics.declare("vnet_ec2_connections", .gauge, "Connections open now.")
        metrics.declare("vnet_ec2_refused_connections_total", .counter, "Connections closed at once: --max-connections were open.")
    }

    /// Counts a new connection; false when the limit is reached (the connection is then closed).
    func admit() -> Bool {
        let admitted: Bool = lock.withLock {
            guard connections < limits.maxConnections else { return false }
            connections += 1
            return true
        }
        if admitted { metrics.add("vnet_ec2_connections", [:], 1) } else { metrics.add("vnet_ec2_refused_connections_total") }
        return admitted
    }

    func release() {
        lock.withLock { connections -= 1 }
        metrics.add("vnet_ec2_connections", [:], -1)
    }

    /// Verifies and carries out one request (on a worker thread: the bus call blocks).
    func answer(_ request: SigV4Verifier.Request, peer: String) -> EC2Response {
        let started = monotonicSeconds()
        let requestID = UUID().uuidString.lowercased()
        let response: EC2Response
        var who = "-"
        do throws(EC2Error) {
            guard request.method == "GET" || request.method == "POST" else {
                throw EC2Error("InvalidAction", "EC2's Query API is GET or POST, not \(request.method.prefix(16))", status: 405)
            }
            let key = try verifier.verify(request, now: Date().timeIntervalSince1970)
            who = "\(key.user) (\(key.id))"
            var parameters = QueryParameters()
            try parameters.add(QueryParameters.parse(request.query, plusIsSpace: false))
            if request.method == "POST", !request.body.isEmpty {
                let type = request.headers.first { $0.0.lowercased() == "content-type" }?.1.lowercased() ?? ""
                guard type.hasPrefix("application/x-www-form-urlencoded") else {
                    throw EC2Error.invalid("Content-Type", "a POST body must be application/x-www-form-urlencoded")
                }
                guard let text = String(validating: request.body, as: UTF8.self) else { throw EC2Error.invalid("body", "not UTF-8") }
                try parameters.add(QueryParameters.parse(text, plusIsSpace: true))
            }
            response = service.handle(parameters, caller: key, requestID: requestID, channel: PooledChannel(pool: pool))
        } catch {
            response = EC2Response(status: error.status, body: EC2XML.error(error, requestID: requestID), action: "", errorCode: error.code)
        }
        let seconds = monotonicSeconds() - started
        metrics.add("vnet_ec2_requests_total", ["action": response.action, "code": response.errorCode ?? ""])
        metrics.observe("vnet_ec2_request_seconds", ["action": response.action], seconds)
        let level: Logger.Level = response.errorCode == nil ? .info : (response.status >= 500 ? .error : .notice)
        log.log(level: level, "\(response.action.isEmpty ? "request" : response.action) by \(who) from \(peer): \(response.status)\(response.errorCode.map { " \($0)" } ?? "")",
                metadata: ["request_id": "\(requestID)", "ms": "\(Int(seconds * 1000))"])
        return response
    }

    /// An answer to a request that could not be read whole (too large, too slow, malformed).
    static func refusal(_ error: EC2Error) -> EC2Response {
        EC2Response(status: error.status, body: EC2XML.error(error, requestID: UUID().uuidString.lowercased()), action: "", errorCode: error.code)
    }
}

/// One connection's HTTP/1.1 exchange: collects a request (head, body within the limit), hands it to a
/// worker, writes the answer. NIO's pipelining helper keeps answers in the order of the requests.
final class EC2HTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let gateway: Gateway
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var refused = false
    private var deadline: Scheduled<Void>?
    private var admitted = false
    /// The client shut down its sending side: answer what is in flight, then close.
    private var inputClosed = false
    private var inFlight = false

    init(gateway: Gateway) { self.gateway = gateway }

    func channelActive(context: ChannelHandlerContext) {
        admitted = gateway.admit()
        if !admitted { context.close(promise: nil); return }
        // The first request's head must come within the request timeout too (later ones: the idle timeout).
        armDeadline(context)
        context.fireChannelActive()
    }

    /// A request must arrive whole within `seconds`: when its head has come, the rest of it is answered 408;
    /// when not even its head has (a trickle, or nothing), the connection is closed.
    private func armDeadline(_ context: ChannelHandlerContext, seconds: Int64? = nil) {
        deadline?.cancel()
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: .seconds(seconds ?? gateway.limits.requestTimeout)) {
            let (handler, context) = loopBound.value
            guard handler.head != nil else { context.close(promise: nil); return }
            handler.refuse(context, EC2Error("RequestTimeout", "the request did not arrive whole within \(handler.gateway.limits.requestTimeout) s", status: 408))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        if admitted { gateway.release(); admitted = false }
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Idle with nothing in flight: close.
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil); return }
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputClosed = true
            if !inFlight { context.close(promise: nil) }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            head = requestHead
            body = []
            refused = false
            armDeadline(context)
            if let length = requestHead.headers.first(name: "content-length").flatMap(Int.init), length > gateway.limits.maxBody {
                refuse(context, EC2Error("RequestEntityTooLarge", "the body is \(length) bytes; at most \(gateway.limits.maxBody) are accepted", status: 413))
            }
        case .body(var buffer):
            guard !refused else { return }
            if body.count + buffer.readableBytes > gateway.limits.maxBody {
                refuse(context, EC2Error("RequestEntityTooLarge", "the body is over \(gateway.limits.maxBody) bytes", status: 413))
                return
            }
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            deadline?.cancel()
            deadline = nil
            guard !refused, let head else { return }
            self.head = nil
            let uri = head.uri
            let path: String, query: String
            if let mark = uri.firstIndex(of: "?") { path = String(uri[..<mark]); query = String(uri[uri.index(after: mark)...]) } else { path = uri; query = "" }
            let request = SigV4Verifier.Request(method: head.method.rawValue, path: path, query: query,
                                                headers: head.headers.map { ($0.name, $0.value) }, body: body)
            body = []
            let peer = context.channel.remoteAddress?.description ?? "?"
            let keepAlive = head.isKeepAlive
            let version = head.version
            let gateway = self.gateway
            inFlight = true
            let answered = gateway.workers.runIfActive(eventLoop: context.eventLoop) { gateway.answer(request, peer: peer) }
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            answered.whenComplete { result in
                let (handler, context) = loopBound.value
                switch result {
                case .success(let response): handler.write(context, response, version: version, keepAlive: keepAlive)
                case .failure: handler.write(context, Gateway.refusal(.unavailable("the gateway is stopping")), version: version, keepAlive: false)
                }
            }
        }
    }

    /// Answers at once and closes: what is left of the request is not read.
    private func refuse(_ context: ChannelHandlerContext, _ error: EC2Error) {
        guard !refused else { return }
        refused = true
        deadline?.cancel()
        deadline = nil
        gateway.metrics.add("vnet_ec2_requests_total", ["action": "", "code": error.code])
        gateway.log.notice("refused a request from \(context.channel.remoteAddress?.description ?? "?"): \(error)")
        write(context, Gateway.refusal(error), version: head?.version ?? .http1_1, keepAlive: false)
    }

    private func write(_ context: ChannelHandlerContext, _ response: EC2Response, version: HTTPVersion, keepAlive requested: Bool) {
        inFlight = false
        let keepAlive = requested && !inputClosed
        var buffer = context.channel.allocator.buffer(capacity: response.body.utf8.count)
        buffer.writeString(response.body)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/xml;charset=UTF-8")
        headers.add(name: "Content-Length", value: String(buffer.readableBytes))
        headers.add(name: "Server", value: "vnet-ec2-api")
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        let done = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: done)
        if !keepAlive {
            done.futureResult.whenComplete { [channel = context.channel] _ in channel.close(promise: nil) }
        } else if !refused {
            // Kept alive: the next request has the idle timeout to arrive whole (its head trickling counts).
            armDeadline(context, seconds: gateway.limits.idleTimeout)
        }
    }
}

