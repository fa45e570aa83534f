import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import VNetStore

/// Where the PostgreSQL store is: `postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|require|verify-full]`
/// (also `postgres://`). A password not in the address is read from `$PGPASSWORD`, as libpq does.
public struct PostgresAddress: Sendable, Equatable, CustomStringConvertible {
    public enum TLSMode: String, Sendable { case disable, require, verifyFull = "verify-full" }
    public var user: String
    public var password: String?
    public var host: String
    public var port: Int
    public var database: String
    public var tls: TLSMode

    public static func isAddress(_ text: String) -> Bool { text.hasPrefix("postgresql://") || text.hasPrefix("postgres://") }

    public init(_ text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(StoreError) {
        func bad(_ why: String) -> StoreError { StoreError(.rejected, "--store: '\(Self.redacted(text))' is not a PostgreSQL address (\(why)); expected postgresql://USER@HOST[:PORT]/DATABASE") }
        guard Self.isAddress(text), let components = URLComponents(string: text) else { throw bad("not a postgresql:// URL") }
        guard let user = components.user, !user.isEmpty else { throw bad("no user") }
        guard let host = components.host, !host.isEmpty else { throw bad("no host") }
        let database = String(components.path.dropFirst())
        guard !database.isEmpty, !database.contains("/") else { throw bad("no database") }
        let port = components.port ?? 5432
        guard (1...65535).contains(port) else { throw bad("port \(port)") }
        var tls = TLSMode.disable
        for item in components.queryItems ?? [] {
            guard item.name == "sslmode", let value = item.value, let mode = TLSMode(rawValue: value) else {
                throw bad("unknown parameter '\(item.name)'; only sslmode=disable|require|verify-full")
            }
            tls = mode
        }
        self.user = user
        self.password = components.password ?? environment["PGPASSWORD"]
        self.host = host
        self.port = port
        self.database = database
        self.tls = tls
    }

    /// Never the password: this is what logs and replies say.
    public var description: String { "postgresql://\(user)@\(host):\(port)/\(database)" }

    static func redacted(_ text: String) -> String {
        guard let at = text.lastIndex(of: "@"), let scheme = text.range(of: "://"), let colon = text[scheme.upperBound..<at].firstIndex(of: ":") else { return text }
        return String(text[..<colon]) + ":***" + String(text[at...])
    }

    func configuration() throws -> PostgresConnection.Configuration {
        let tlsSetting: PostgresConnection.Configuration.TLS
        switch tls {
        case .disable: tlsSetting = .disable
        case .require:
            // libpq's `require`: encrypted, the server's certificate not checked.
            var settings = TLSConfiguration.makeClientConfiguration()
            settings.certificateVerification = .none
            tlsSetting = .require(try NIOSSLContext(configuration: settings))
        case .verifyFull:
            tlsSetting = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        }
        var configuration = PostgresConnection.Configuration(host: host, port: port, username: user, password: password, database: database, tls: tlsSetting)
        configuration.options.connectTimeout = .seconds(2)
        return configuration
    }
}

/// One PostgreSQL connection used from one thread at a time, made again after it breaks, with a deadline on
/// every statement: the coordinator's loop waits for the store, and must never wait for ever on a server that
/// went away (a cut link gives no error, only silence).
final class PostgresConnector {
    let address: PostgresAddress
    let timeout: Double
    private var connection: PostgresConnection?
    private let logger: Logger
    private static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private static let counter = NSLock()
    nonisolated(unsafe) private static var nextID = 0

    init(address: PostgresAddress, timeout: Double) {
        self.address = address
        self.timeout = timeout
        var logger = Logger(label: "vnet.postgres")
        logger.logLevel = .critical  // errors are thrown and said by the caller, once, in its words
        self.logger = logger
    }

    deinit { close(connection) }

    /// Closes the connection (the next statement connects again).
    func reset() {
        close(connection)
        connection = nil
    }

    /// Held until closed: postgres-nio asserts that a connection is closed before it is released.
    private func close(_ connection: PostgresConnection?) {
        guard let connection else { return }
        let closing: EventLoopFuture<Void> = connection.close()
        closing.whenComplete { _ in withExtendedLifetime(connection) {} }
    }

    func connected() throws(StoreError) -> PostgresConnection {
        if let connection, !connection.isClosed { return connection }
        connection = nil
        let configuration: PostgresConnection.Configuration
        do { configuration = try address.configuration() } catch { throw StoreError(.rejected, "\(address): TLS: \(error)") }
        Self.counter.lock(); Self.nextID += 1; let id = Self.nextID; Self.counter.unlock()
        let future = PostgresConnection.connect(on: Self.group.next(), configuration: configuration, id: id, logger: logger)
        let made = try wait(future, doing: "connect")
        connection = made
        return made
    }

    /// Runs one statement and collects its rows.
    @discardableResult
    func run(_ query: PostgresQuery) throws(StoreError) -> PostgresQueryResult {
        let connection = try connected()
        return try wait(connection.query(query, logger: logger), doing: "run a statement")
    }

    /// Sends several statements without waiting between them (postgres-nio queues them on the connection, so
    /// they cost the server's time, not a wake-up of this thread each), then waits for them all.
    func runAll(_ queries: [PostgresQuery]) throws(StoreError) -> [PostgresQueryResult] {
        let connection = try connected()
        let futures = queries.map { connection.query($0, logger: logger) }
        var results: [PostgresQueryResult] = []
        var firstError: StoreError?
        for future in futures {
            do { results.append(try wait(future, doing: "run a statement")) } catch {
                if firstError == nil { firstError = error }
                if error.kind == .unavailable { throw error }
            }
        }
        if let firstError { throw firstError }
        return results
    }

    /// Waits for `future` at most `timeout` seconds. A server error (SQLSTATE) is `rejected`: the server
    /// answered, and a statement it refused wrote nothing. Anything else is `unavailable`, and the connection
    /// is dropped, since a statement may still be under way on it.
    func wait<T: Sendable>(_ future: EventLoopFuture<T>, doing what: String) throws(StoreError) -> T {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<T>()
        future.whenComplete { result in
            box.set(result)
            done.signal()
        }
        guard done.wait(timeout: .now() + timeout) == .success, let result = box.get() else {
            reset()
            throw StoreError(.unavailable, "PostgreSQL at \(address) did not answer within \(timeout) s (\(what))")
        }
        switch result {
        case .success(let value): return value
        case .failure(let error):
            if let psql = error as? PSQLError, psql.code == .server, let info = psql.serverInfo {
                let state = info[.sqlState] ?? "?"
                let detail = info[.detail].map { " (\($0))" } ?? ""
                // vnet_fence's own codes: this coordinator's epoch or revision is not the store's.
                if state.hasPrefix("VNF") { throw StoreError(.fenced, "\(address): \(info[.message] ?? "fenced")") }
                // 57P01 admin_shutdown, 57P02/57P03: the server is going away or not ready; 40001/40P01:
                // serialization failures. None of them is about the change itself.
                if state.hasPrefix("57P") || state.hasPrefix("08") || state == "40001" || state == "40P01" {
                    reset()
                    throw StoreError(.unavailable, "PostgreSQL at \(address): \(info[.message] ?? "error") [\(state)]")
                }
                throw StoreError(.rejected, "PostgreSQL at \(address) refused it: \(info[.message] ?? "error")\(detail) [\(state)]")
            }
            reset()
            let reason = (error as? PSQLError).map { "\($0.code)" + ($0.underlying.map { ": \($0)" } ?? "") } ?? "\(error)"
            throw StoreError(.unavailable, "PostgreSQL at \(address) is unreachable (\(what)): \(reason)")
        }
    }
}

private final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Result<T, any Error>?
    func set(_ result: Result<T, any Error>) { lock.lock(); value = result; lock.unlock() }
    func get() -> Result<T, any Error>? { lock.lock(); defer { lock.unlock() }; return value }
}
