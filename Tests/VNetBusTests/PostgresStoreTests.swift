import Foundation
import Testing
@testable import VNetCore
import VNetPostgres
import VNetStore
import VNetTestSupport

/// The PostgreSQL store against a real server (Debian's postgresql-15, initdb in a scratch directory on
/// 127.0.0.1): the same rows as SQLite's, the same guarantees, the lease and its fence, and a server that
/// goes away and comes back.
@Suite("PostgreSQL store", .serialized)
struct PostgresStoreTests {
    func store(_ server: ScratchPostgres, timeout: Double = 2) throws -> PostgresClusterStore {
        let store = PostgresClusterStore(address: try PostgresAddress(server.url), timeout: timeout)
        try store.migrate()
        return store
    }

    /// StoreTests' sample (nodes, groups with rules of both sources, instances with and without a vif, an
    /// associated and a free public address, a host revision with every digest bit set), as revision 1.
    func sample() throws -> (ClusterState, StoreChange) {
        var (state, change) = try StoreTests().sampleChange()
        change.revision = 1
        state.publicIPOwners[state.publicIPs.keys.sorted().first!] = "alice"
        change = StoreChange.between(ClusterState(frontend: ""), state, revision: 1, nodeRevisions: change.nodeRevisions)
        return (state, change)
    }

    @Test func whatIsCommittedComesBackAsFromSQLite() throws {
        let server = try ScratchPostgres()
        let store = try store(server)
        try store.migrate()  // again: nothing to do
        #expect(try server.psql("SELECT count(*) FROM vnet_migrations").trimmingCharacters(in: .whitespacesAndNewlines) == "1")
        let lease = try store.acquire(holder: "a", control: "tcp://127.0.0.1:1", seconds: 30)
        let (state, change) = try sample()
        try store.commit(change, epoch: lease.epoch)
        let loaded = try PostgresClusterStore(address: try PostgresAddress(server.url)).load()  // a new connection
        #expect(loaded.state == state)
        #expect(loaded.revision == 1)
        #expect(loaded.nodeRevisions == change.nodeRevisions)
        // The same change through SQLite loads the same.
        let directory = StoreTests().temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try SQLiteClusterStore(directory: directory).commit(change)
        #expect(try SQLiteClusterStore(directory: directory).load().state == loaded.state)
        // Terminating, releasing, moving an address: revision 2.
        var next = state
        next.instances[InstanceID(number: 1)] = nil
        let free = next.publicIPs.first { $0.value == nil }!.key
        let held = next.publicIPs.first { $0.value != nil }!
        next.publicIPs[held.key] = .some(nil)
        next.publicIPs[free] = held.value
        try store.commit(StoreChange.between(state, next, revision: 2, nodeRevisions: [:]), epoch: lease.epoch)
        let reloaded = try store.load()
        #expect(reloaded.state == next)
        #expect(reloaded.revision == 2)
    }

    @Test func aClashIsRefusedAndWritesNothing() throws {
        let server = try ScratchPostgres()
        let store = try store(server)
        let epoch = try store.acquire(holder: "a", control: "", seconds: 30).epoch
        let (state, change) = try sample()
        try store.commit(change, epoch: epoch)
        // Another instance with instance 2's MAC: the Allocator never does it; UNIQUE refuses it if it did.
        var clash = StoreChange(revision: 2)
        var copy = state.instances[InstanceID(number: 2)]!
        copy.id = InstanceID(number: 9)
        copy.address = nil
        clash.instances = [copy]
        clash.nodes = [.init(name: "n2", interface: "eth0", bridge: "br0")]
        do {
            try store.commit(clash, epoch: epoch)
            Issue.record("a MAC twice was committed")
        } catch let error as StoreError {
            #expect(error.kind == .rejected)
            #expect(error.message.contains("unique") || error.message.contains("duplicate"), "\(error)")
        }
        let after = try store.load()
        #expect(after.revision == 1)
        #expect(after.state == state, "nothing of the refused batch (not even its node) was written")
        // The store is usable after the refusal.
        var good = StoreChange(revision: 2)
        good.nodes = [.init(name: "n2", interface: "eth0", bridge: "br0")]
        try store.commit(good, epoch: epoch)
        #expect(try store.load().state.nodes["n2"] != nil)
    }

    @Test func theLeaseHasOneHolderAndItsEpochFencesEveryCommit() throws {
        let server = try ScratchPostgres()
        let a = try store(server), b = try store(server)
        let first = try a.acquire(holder: "a", control: "tcp://10.0.0.1:7462", seconds: 1)
        #expect(first.holder == "a" && first.epoch == 1 && first.isHeld)
        let seen = try b.acquire(holder: "b", control: "tcp://10.0.0.2:7462", seconds: 1)
        #expect(seen.holder == "a" && seen.epoch == 1 && seen.control == "tcp://10.0.0.1:7462", "held: b only sees who has it")
        #expect(try a.renew(epoch: 1, seconds: 1))
        let (_, change) = try sample()
        try a.commit(change, epoch: 1)
        // a pauses past its lease; b takes over under epoch 2.
        Thread.sleep(forTimeInterval: 1.2)
        #expect(try a.current().isHeld == false)
        let second = try b.acquire(holder: "b", control: "tcp://10.0.0.2:7462", seconds: 30)
        #expect(second.holder == "b" && second.epoch == 2)
        // a wakes up: it can neither renew nor write.
        #expect(try a.renew(epoch: 1, seconds: 1) == false)
        var late = StoreChange(revision: 2)
        late.nodes = [.init(name: "late", interface: "eth0", bridge: "br0")]
        do {
            try a.commit(late, epoch: 1)
            Issue.record("a deposed coordinator committed")
        } catch let error as StoreError {
            #expect(error.kind == .fenced, "\(error)")
            #expect(error.message.contains("epoch 1 no longer leads"), "\(error)")
        }
        #expect(try b.load().state.nodes["late"] == nil)
        // b writes; a coordinator that built on an older revision is fenced too, even under the right epoch.
        try b.commit(late, epoch: 2)
        do {
            try b.commit(late, epoch: 2)
            Issue.record("revision 2 was written twice")
        } catch let error as StoreError {
            #expect(error.kind == .fenced && error.message.contains("stored revision is not 1"), "\(error)")
        }
        // A lease released is taken at once, under a new epoch; re-acquiring one's own lease bumps the epoch.
        try b.release(epoch: 2)
        #expect(try a.acquire(holder: "a", control: "", seconds: 30).epoch == 3)
        #expect(try a.acquire(holder: "a", control: "", seconds: 30).epoch == 4)
        #expect(try b.acquire(holder: "b", control: "", seconds: 30).holder == "a")
    }

    @Test func aServerThatGoesAwayIsAClearRefusalAndComingBackNeedsNoRestart() throws {
        let server = try ScratchPostgres()
        let store = try store(server, timeout: 2)
        let epoch = try store.acquire(holder: "a", control: "", seconds: 60).epoch
        let (_, change) = try sample()
        try store.commit(change, epoch: epoch)
        try server.stop(mode: "fast")
        var next = StoreChange(revision: 2)
        next.nodes = [.init(name: "n2", interface: "eth0", bridge: "br0")]
        let started = Date()
        do {
            try store.commit(next, epoch: epoch)
            Issue.record("committed to a stopped server")
        } catch let error as StoreError {
            #expect(error.kind == .unavailable, "\(error)")
            #expect(error.message.contains("postgresql://vnet@127.0.0.1:\(server.port)/vnet"), "the refusal names the server: \(error)")
        }
        #expect(Date().timeIntervalSince(started) < 5, "refused within the statement timeout, not hung")
        do { _ = try store.load(); Issue.record("loaded from a stopped server") } catch let error as StoreError { #expect(error.kind == .unavailable) }
        try server.start()
        try store.commit(next, epoch: epoch)  // the same store object: it connects again by itself
        #expect(try store.load().state.nodes["n2"] != nil)
    }

    @Test func badAddressesAreRefusedByName() throws {
        for (text, expected) in [("postgresql://db/vnet", "no user"), ("postgresql://u@/vnet", "no host"), ("postgresql://u@db", "no database"),
                                 ("postgresql://u@db/vnet?sslmode=maybe", "sslmode"), ("mysql://u@db/x", "not a postgresql")] {
            #expect(throws: StoreError.self) { try PostgresAddress(text) }
            do { _ = try PostgresAddress(text) } catch { #expect(error.message.contains(expected), "\(text): \(error)") }
        }
        let address = try PostgresAddress("postgresql://vnet:s3cret@db.example:6432/cluster?sslmode=require", environment: [:])
        #expect(address.description == "postgresql://vnet@db.example:6432/cluster" && address.password == "s3cret" && address.tls == .require)
        do { _ = try PostgresAddress("postgresql://vnet:s3cret@db/x?sslmode=no") } catch { #expect(!error.message.contains("s3cret"), "\(error)") }
        #expect(try PostgresAddress("postgres://u@h/d", environment: ["PGPASSWORD": "p"]).password == "p")
    }
}
