import Foundation
import Testing
import VNetBus
import VNetCore
import VNetProto

/// Metrics and structured logs of the real daemons: every scrape is read by Prometheus' own Python parser
/// (prometheus_client, Debian's python3-prometheus-client, installed by deploy/install-deps.sh), and the
/// values must be the cluster's.
@Suite("metrics and structured logs", .serialized)
struct ObservabilityTests {
    /// A scrape of http://ADDRESS/metrics as parsed by prometheus_client: sample name and labels -> value.
    struct Scrape {
        var samples: [String: Double] = [:]
        subscript(_ name: String, _ labels: [String: String] = [:]) -> Double? {
            samples[Scrape.key(name, labels)]
        }
        static func key(_ name: String, _ labels: [String: String]) -> String {
            name + "{" + labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") + "}"
        }
    }

    static let parser = """
    import sys, json, urllib.request
    from prometheus_client.parser import text_string_to_metric_families
    response = urllib.request.urlopen("http://" + sys.argv[1] + "/metrics", timeout=5)
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4"), response.headers["Content-Type"]
    out = []
    for family in text_string_to_metric_families(response.read().decode()):
        for sample in family.samples:
            out.append([sample.name, sample.labels, sample.value])
    print(json.dumps(out))
    """

    static func scrape(_ address: String) throws -> Scrape {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", parser, address]
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let problem = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0, let rows = try JSONSerialization.jsonObject(with: data) as? [[Any]] else {
            throw ScrapeFailed(text: "prometheus_client could not read \(address): \(problem)")
        }
        var scrape = Scrape()
        for row in rows {
            guard let name = row[0] as? String, let labels = row[1] as? [String: String], let value = row[2] as? Double else { continue }
            scrape.samples[Scrape.key(name, labels)] = value
        }
        return scrape
    }

    struct ScrapeFailed: Error, CustomStringConvertible { var text: String; var description: String { text } }

    @Test func bothDaemonsServeMetricsThatPrometheusParsesWithTheClustersValues() throws {
        let cluster = try ClusterHarness()
        try cluster.startCoordinator(extra: ["--metrics", "127.0.0.1:0", "--log-format", "json"])
        try cluster.startFrontendAgent()
        try cluster.startAgent("n1", extra: ["--metrics", "127.0.0.1:0", "--log-format", "json"])
        let coordinatorMetrics = try cluster.metricsAddress("coordinator"), agentMetrics = try cluster.metricsAddress("agent-n1")
        try cluster.waitUntil(timeout: 10, "n1 is UP") { try cluster.nodes()["n1"]?.appliedRevision ?? 0 > 0 }
        let run = try cluster.control(runInstance("i-0000a001", node: "n1"))
        #expect(run.ok, "\(run.error)")
        let refused = try cluster.control(runInstance("i-0000a002", node: "nowhere"))
        #expect(!refused.ok)
        try cluster.waitUntil(timeout: 10, "n1 applied its instance") {
            let node = try cluster.nodes()["n1"]
            return node?.state == "UP" && node?.appliedRevision == run.revision
        }
        var coordinator = Scrape(), agent = Scrape()
        // Gauges are refreshed once a second by each loop.
        try cluster.waitUntil(timeout: 5, "both scrapes show n1 at revision \(run.revision)") {
            coordinator = try Self.scrape(coordinatorMetrics)
            agent = try Self.scrape(agentMetrics)
            return coordinator["vnet_node_applied_revision", ["node": "n1"]] == Double(run.revision)
                && agent["vnet_agent_applied_revision"] == Double(run.revision)
        }
        #expect(coordinator["vnet_node_desired_revision", ["node": "n1"]] == Double(run.revision))
        #expect(coordinator["vnet_revision"] == Double(run.revision))
        #expect(coordinator["vnet_nodes", ["state": "UP"]] == 2)
        #expect(coordinator["vnet_nodes", ["state": "DOWN"]] == 0)
        #expect(coordinator["vnet_instances"] == 1)
        #expect(coordinator["vnet_control_requests_total", ["result": "ok"]] ?? 0 >= 1)
        #expect(coordinator["vnet_control_requests_total", ["result": "error"]] == 1)
        #expect(coordinator["vnet_commit_seconds_count"] ?? 0 >= 1)
        #expect(coordinator["vnet_commit_failures_total"] == 0)
        #expect(agent["vnet_agent_desired_revision"] == Double(run.revision))
        #expect(agent["vnet_agent_coordinator_connected"] == 1)
        #expect(agent["vnet_agent_applies_total", ["result": "ok"]] == 2, "the first state, then the instance")
        #expect(agent["vnet_agent_apply_seconds_count", ["trigger": "update"]] == 2)
        #expect(agent["vnet_agent_apply_seconds_bucket", ["trigger": "update", "le": "+Inf"]] == 2)
        #expect(agent["vnet_agent_messages_refused_total", ["reason": "malformed"]] == 0)

        // n1 stops; a change for it is desired but not applied, and the scrape says so.
        cluster.kill9(cluster.agents["n1"])
        let second = try cluster.control(runInstance("i-0000a003", node: "n1"))
        #expect(second.ok, "\(second.error)")
        try cluster.waitUntil(timeout: 10, "the scrape shows n1 DOWN and behind") {
            coordinator = try Self.scrape(coordinatorMetrics)
            return coordinator["vnet_nodes", ["state": "DOWN"]] == 1
        }
        #expect(coordinator["vnet_node_desired_revision", ["node": "n1"]] == Double(second.revision))
        #expect(coordinator["vnet_node_applied_revision", ["node": "n1"]] == Double(run.revision))
        #expect(coordinator["vnet_nodes", ["state": "UP"]] == 1)

        // Structured logs: every line is one JSON object; every line about a change names node and revision.
        let lines = cluster.log("agent-n1").split(separator: "\n").filter { $0.hasPrefix("{") }
        #expect(lines.count >= 3)
        var applied = 0
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String], "not a JSON object: \(line)")
            #expect(object["node"] == "n1" && object["component"] == "agent" && object["ts"] != nil && object["level"] != nil, "\(line)")
            if object["msg"]?.hasPrefix("applied") == true {
                applied += 1
                #expect(object["revision"].flatMap(UInt64.init) != nil, "a line about a change without its revision: \(line)")
            }
        }
        #expect(applied == 2)
        let upLine = cluster.log("coordinator").split(separator: "\n").first { $0.contains("node n1 is UP") }
        let up = try #require(upLine.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String] })
        #expect(up["node"] == "n1" && up["level"] == "notice")
    }

    @Test func aBadMetricsAddressIsRefusedByName() throws {
        let cluster = try ClusterHarness()
        let process = try cluster.launch("vnet-coordinator", [
            "--config", cluster.frontendConfig, "--state-dir", "\(cluster.directory)/coordinator", "--listen", "127.0.0.1:0",
            "--insecure", "--metrics", "localhost:http",
        ], log: "\(cluster.directory)/bad.log")
        process.waitUntilExit()
        #expect(process.terminationStatus != 0)
        #expect(cluster.log("bad").contains("--metrics: 'localhost:http' is not IPV4:PORT"), "\(cluster.log("bad"))")
    }
}

/// The metrics server on its own: what a scraper, a port scanner or a confused client may send it.
@Suite("metrics server")
struct MetricsServerTests {
    /// One HTTP exchange on a fresh connection: what the server answered.
    static func exchange(_ address: String, _ request: [UInt8]) throws -> String {
        let port = UInt16(address.split(separator: ":").last!)!
        let descriptor = try connectLoopback(port)
        defer { close(descriptor) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = request.withUnsafeBytes { write(descriptor, $0.baseAddress!, request.count) }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(descriptor, &buffer, buffer.count)
            if count <= 0 { break }
            answer += buffer[..<count]
        }
        return String(decoding: answer, as: UTF8.self)
    }

    /// A TCP connection to 127.0.0.1:`port`.
    static func connectLoopback(_ port: UInt16) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = port.bigEndian
        target.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &target) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else { close(descriptor); throw ObservabilityTests.ScrapeFailed(text: "connect: \(errno)") }
        return descriptor
    }

    @Test func answersScrapesAndRefusesEverythingElseWithoutStopping() throws {
        let registry = MetricsRegistry()
        registry.declare("vnet_test_total", .counter, "A test counter.")
        registry.add("vnet_test_total", ["node": "n\"1"])
        let server = try MetricsServer(listen: "127.0.0.1:0", registry: registry)
        server.start()
        defer { server.stop() }
        let scrape = try Self.exchange(server.address, Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(scrape.hasPrefix("HTTP/1.0 200 OK\r\n") && scrape.contains("Content-Type: text/plain; version=0.0.4"))
        #expect(scrape.contains("vnet_test_total{node=\"n\\\"1\"} 1\n"))
        #expect(try Self.exchange(server.address, Array("POST /metrics HTTP/1.1\r\n\r\n".utf8)).hasPrefix("HTTP/1.0 405"))
        #expect(try Self.exchange(server.address, Array("GET / HTTP/1.1\r\n\r\n".utf8)).hasPrefix("HTTP/1.0 404"))
        // 64 KiB of noise without an end of headers: read up to 16 KiB, answered, closed.
        var noise = SeededGenerator(seed: 7)
        let garbage = (0..<65_536).map { _ in UInt8(truncatingIfNeeded: noise.next()) }
        #expect(try Self.exchange(server.address, garbage).hasPrefix("HTTP/1.0 "))
        // And it still serves.
        #expect(try Self.exchange(server.address, Array("GET /metrics HTTP/1.0\r\n\r\n".utf8)).contains("vnet_test_total"))
    }

    /// Scrapers that hang up before their answer is written (a reset): the server's write fails, it gives that
    /// connection up and goes on serving. Its writes use MSG_NOSIGNAL, so a write to a dead connection cannot
    /// raise SIGPIPE (whose default action would end the daemon); SIGPIPE is at its default here for the test's
    /// duration, as it is in a daemon started by systemd (test processes usually ignore it).
    @Test func scrapersHangingUpDoNotStopTheServer() throws {
        let registry = MetricsRegistry()
        registry.declare("vnet_node_applied_revision", .gauge, "Per node.")
        registry.replace("vnet_node_applied_revision", (0..<2_000).map { .init(labels: ["node": "node-\($0)"], value: Double($0)) })
        let server = try MetricsServer(listen: "127.0.0.1:0", registry: registry)
        server.start()
        defer { server.stop() }
        let previous = signal(SIGPIPE, SIG_DFL)
        defer { signal(SIGPIPE, previous) }
        let port = UInt16(server.address.split(separator: ":").last!)!
        for _ in 0..<5 {
            let descriptor = try Self.connectLoopback(port)
            let request = Array("GET /metrics HTTP/1.0\r\n\r\n".utf8)
            _ = request.withUnsafeBytes { write(descriptor, $0.baseAddress!, request.count) }
            var reset = linger(l_onoff: 1, l_linger: 0)  // close with a reset, not a goodbye
            setsockopt(descriptor, SOL_SOCKET, SO_LINGER, &reset, socklen_t(MemoryLayout<linger>.size))
            close(descriptor)
        }
        // At once: the resets are handled before (or while) the next scraper waits in the accept queue.
        #expect(try Self.exchange(server.address, Array("GET /metrics HTTP/1.0\r\n\r\n".utf8)).contains("node-1999"))
    }

    @Test func aPortInUseOrABadAddressIsANamedError() throws {
        let first = try MetricsServer(listen: "127.0.0.1:0", registry: MetricsRegistry())
        #expect(throws: BusError.self) { _ = try MetricsServer(listen: first.address, registry: MetricsRegistry()) }
        #expect(throws: BusError.self) { _ = try MetricsServer(listen: "127.0.0.1", registry: MetricsRegistry()) }
        #expect(throws: BusError.self) { _ = try MetricsServer(listen: "example.org:9640", registry: MetricsRegistry()) }
    }
}

