import Foundation
import PostgresNIO
import VNetCore
import VNetStore

/// `ClusterStore` and `LeaseStore` in PostgreSQL, shared by every coordinator of a cluster (README "High
/// availability"). The tables are SQLite's (same columns, same UNIQUE constraints on addresses, MACs and
/// networks), plus `leader`, the one-row lease.
///
/// A commit is one transaction that starts with `vnet_fence(epoch, revision)`: it locks the lease row (so a
/// takeover waits for the commit to end, and a commit after a takeover sees the new epoch), and refuses unless
/// the lease is this epoch's and unlapsed by the server's clock, and the stored revision is the one this
/// coordinator built on. A coordinator that lost its lease, paused or cut off, can never write again.
///
/// Rows go in as arrays (`unnest`), so a batch of 1000 new instances is a dozen statements, not thousands.
public final class PostgresClusterStore: ClusterStore, LeaseStore {
    public let address: PostgresAddress
    let connector: PostgresConnector
    public var location: String { address.description }

    /// `timeout`: the longest the caller waits for any one statement (and the connection).
    public init(address: PostgresAddress, timeout: Double = 2) {
        self.address = address
        connector = PostgresConnector(address: address, timeout: timeout)
    }

    // MARK: schema

    /// Versioned migrations, each applied once in its own transaction under an advisory lock, so that
    /// coordinators started together do not both run one. A database migrated by a newer vnet is refused.
    static let migrations: [(version: Int, sql: [String])] = [
        (1, [
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
            "CREATE TABLE nodes (name TEXT PRIMARY KEY, interface TEXT NOT NULL, bridge TEXT NOT NULL)",
            "CREATE TABLE host_revisions (host TEXT PRIMARY KEY, revision BIGINT NOT NULL, previous BIGINT NOT NULL, digest BIGINT NOT NULL)",
            """
            CREATE TABLE groups ("user" TEXT NOT NULL, name TEXT NOT NULL, network INTEGER NOT NULL UNIQUE, rules TEXT NOT NULL,
                                 description TEXT NOT NULL DEFAULT '', PRIMARY KEY ("user", name))
            """,
            """
            CREATE TABLE instances (id BIGINT PRIMARY KEY, node TEXT NOT NULL, "user" TEXT, grp TEXT, address BIGINT UNIQUE,
                                    mac BIGINT NOT NULL UNIQUE, vif TEXT)
            """,
            "CREATE TABLE public_ips (address BIGINT PRIMARY KEY, instance BIGINT UNIQUE, owner TEXT NOT NULL DEFAULT '')",
            """
            CREATE TABLE leader (id INTEGER PRIMARY KEY CHECK (id = 1), epoch BIGINT NOT NULL, holder TEXT NOT NULL,
                                 control TEXT NOT NULL, expires TIMESTAMPTZ NOT NULL)
            """,
            "INSERT INTO meta (key, value) VALUES ('revision', 0)",
            "INSERT INTO leader (id, epoch, holder, control, expires) VALUES (1, 0, '', '', '-infinity')",
            // Raised errors abort the transaction: a fence that only returned no row would let the rest commit.
            """
            CREATE FUNCTION vnet_fence(wanted BIGINT, next_revision BIGINT) RETURNS VOID LANGUAGE plpgsql AS $$
            DECLARE
                current BIGINT;
                live BOOLEAN;
            BEGIN
                SELECT epoch, expires > clock_timestamp() INTO current, live FROM leader WHERE id = 1 FOR SHARE;
                IF current IS DISTINCT FROM wanted OR NOT live THEN
                    RAISE EXCEPTION 'epoch % no longer leads (the lease is at epoch %, %)', wanted, current,
                        CASE WHEN live THEN 'held' ELSE 'lapsed' END USING ERRCODE = 'VNF01';
                END IF;
                UPDATE meta SET value = next_revision WHERE key = 'revision' AND value = next_revision - 1;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'the stored revision is not %: another coordinator wrote since this one loaded',
                        next_revision - 1 USING ERRCODE = 'VNF02';
                END IF;
            END $$
            """,
        ]),
    ]

    /// Creates or upgrades the schema. Safe to call from several coordinators at once.
    public func migrate() throws(StoreError) {
        try connector.run("CREATE TABLE IF NOT EXISTS vnet_migrations (version INTEGER PRIMARY KEY, applied TIMESTAMPTZ NOT NULL DEFAULT now())")
        let known = Self.migrations.map(\.version).max() ?? 0
        let newest = try connector.run("SELECT coalesce(max(version), 0) FROM vnet_migrations").first.flatMap { try? $0.decode(Int.self) } ?? 0
        guard newest <= known else {
            throw StoreError(.rejected, "\(address) holds schema version \(newest), made by a newer vnet (this one knows up to \(known)): upgrade this coordinator")
        }
        for migration in Self.migrations where migration.version > newest {
            do {
                var statements: [PostgresQuery] = ["BEGIN", "SELECT pg_advisory_xact_lock(7460)"]
                try connector.runAll(statements)
                // Another coordinator may have applied it while this one waited for the lock.
                let done = try connector.run("SELECT count(*) FROM vnet_migrations WHERE version = \(migration.version)").first.flatMap { try? $0.decode(Int.self) } ?? 0
                if done > 0 { try connector.run("ROLLBACK"); continue }
                statements = migration.sql.map { PostgresQuery(unsafeSQL: $0) }
                statements.append("INSERT INTO vnet_migrations (version) VALUES (\(migration.version))")
                statements.append("COMMIT")
                try connector.runAll(statements)
            } catch {
                _ = try? connector.run("ROLLBACK")
                throw StoreError(error.kind, "migrating \(address) to schema version \(migration.version): \(error.message)")
            }
        }
    }

    // MARK: ClusterStore

    public func load() throws -> StoredCluster {
        // One snapshot of every table: a commit landing meanwhile is seen whole or not at all.
        let results: [PostgresQueryResult]
        do {
            results = try connector.runAll([
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                "SELECT name, interface, bridge FROM nodes",
                "SELECT host, revision, previous, digest FROM host_revisions",
                #"SELECT "user", name, network, rules, description FROM groups"#,
                #"SELECT id, node, "user", grp, address, mac, vif FROM instances"#,
                "SELECT address, instance, owner FROM public_ips",
                "SELECT value FROM meta WHERE key = 'revision'",
                "COMMIT",
            ])
        } catch {
            _ = try? connector.run("ROLLBACK")
            throw StoreError(error.kind, "loading the cluster from \(address): \(error.message)")
        }
        var state = ClusterState(frontend: "")
        var nodeRevisions: [String: NodeRevision] = [:]
        for row in results[1] {
            let (name, interface, bridge) = try row.decode((String, String, String).self)
            state.nodes[name] = .init(name: name, interface: interface, bridge: bridge)
        }
        for row in results[2] {
            let (host, revision, previous, digest) = try row.decode((String, Int64, Int64, Int64).self)
            nodeRevisions[host] = NodeRevision(revision: UInt64(revision), previous: UInt64(previous), digest: UInt64(bitPattern: digest))
        }
        for row in results[3] {
            let (user, name, network, rules, description) = try row.decode((String, String, Int, String, String).self)
            let id = GroupID(user: user, name: name)
            let decoded: [SecurityRule]
            do { decoded = try RuleRecord.decode(rules) } catch {
                throw ClusterError("the stored rules of group \(id) in \(address) cannot be read: \(error)")
            }
            state.groups[id] = .init(id: id, rules: decoded, network: network, description: description)
        }
        for row in results[4] {
            let (number, node, user, group, address, mac, vif) = try row.decode((Int64, String, String?, String?, Int64?, Int64, String?).self)
            let id = InstanceID(number: UInt32(number))
            state.instances[id] = .init(id: id, node: node, group: user.flatMap { u in group.map { GroupID(user: u, name: $0) } },
                                        address: address.map { IPv4Address(UInt32($0)) }, mac: MACAddress(UInt64(mac)), hypervisorVif: vif)
        }
        for row in results[5] {
            let (value, instance, owner) = try row.decode((Int64, Int64?, String).self)
            let address = IPv4Address(UInt32(value))
            state.publicIPs[address] = .some(instance.map { InstanceID(number: UInt32($0)) })
            if !owner.isEmpty { state.publicIPOwners[address] = owner }
        }
        let revision = try results[6].first?.decode(Int64.self) ?? 0
        return StoredCluster(state: state, revision: UInt64(revision), nodeRevisions: nodeRevisions)
    }

    public func commit(_ change: StoreChange, epoch: UInt64) throws {
        var statements: [PostgresQuery] = ["BEGIN", "SELECT vnet_fence(\(Int64(epoch)), \(Int64(change.revision)))"]
        // Deletes first, then inserts, so that a row re-using a freed address, MAC or network in the same batch
        // does not trip UNIQUE; an instance that changed is deleted and inserted again.
        let gone = (change.deletedInstances + change.instances.map(\.id)).map { Int64($0.number) }
        if !gone.isEmpty { statements.append("DELETE FROM instances WHERE id = ANY(\(gone))") }
        if !change.releasedPublicIPs.isEmpty {
            statements.append("DELETE FROM public_ips WHERE address = ANY(\(change.releasedPublicIPs.map { Int64($0.value) }))")
        }
        if !change.deletedGroups.isEmpty {
            statements.append(#"DELETE FROM groups WHERE ("user", name) IN (SELECT * FROM unnest(\#(change.deletedGroups.map(\.user)), \#(change.deletedGroups.map(\.name))))"#)
        }
        if !change.nodes.isEmpty {
            statements.append("""
                INSERT INTO nodes (name, interface, bridge)
                SELECT * FROM unnest(\(change.nodes.map(\.name)), \(change.nodes.map(\.interface)), \(change.nodes.map(\.bridge)))
                ON CONFLICT (name) DO UPDATE SET interface = excluded.interface, bridge = excluded.bridge
                """)
        }
        if !change.groups.isEmpty {
            let rules = try change.groups.map { try RuleRecord.encode($0.rules) }
            statements.append("""
                INSERT INTO groups ("user", name, network, rules, description)
                SELECT * FROM unnest(\(change.groups.map(\.id.user)), \(change.groups.map(\.id.name)), \(change.groups.map { Int32($0.network) }),
                                     \(rules), \(change.groups.map(\.description)))
                ON CONFLICT ("user", name) DO UPDATE SET network = excluded.network, rules = excluded.rules, description = excluded.description
                """)
        }
        if !change.instances.isEmpty {
            let instances = change.instances
            // Arrays cannot hold NULL here: a flag says whether the group, address and vif are there.
            statements.append("""
                INSERT INTO instances (id, node, "user", grp, address, mac, vif)
                SELECT id, node, CASE WHEN has_group THEN u END, CASE WHEN has_group THEN g END, NULLIF(a, -1), mac,
                       CASE WHEN has_vif THEN v END
                FROM unnest(\(instances.map { Int64($0.id.number) }), \(instances.map(\.node)), \(instances.map { $0.group != nil }),
                            \(instances.map { $0.group?.user ?? "" }), \(instances.map { $0.group?.name ?? "" }),
                            \(instances.map { $0.address.map { Int64($0.value) } ?? -1 }), \(instances.map { Int64($0.mac.value) }),
                            \(instances.map { $0.hypervisorVif != nil }), \(instances.map { $0.hypervisorVif ?? "" }))
                     AS rows (id, node, has_group, u, g, a, mac, has_vif, v)
                """)
        }
        if !change.publicIPs.isEmpty {
            let addresses = change.publicIPs.map { Int64($0.0.value) }
            let holders = change.publicIPs.compactMap { $0.1.map { Int64($0.number) } }
            // Unhooked first: an address moving between instances in one batch must not meet UNIQUE half way.
            statements.append("UPDATE public_ips SET instance = NULL WHERE address = ANY(\(addresses)) OR instance = ANY(\(holders))")
            statements.append("""
                INSERT INTO public_ips (address, instance, owner)
                SELECT a, NULLIF(i, -1), o FROM unnest(\(addresses), \(change.publicIPs.map { $0.1.map { Int64($0.number) } ?? -1 }),
                                                        \(change.publicIPs.map(\.2))) AS rows (a, i, o)
                ON CONFLICT (address) DO UPDATE SET instance = excluded.instance, owner = excluded.owner
                """)
        }
        if !change.nodeRevisions.isEmpty {
            let revisions = change.nodeRevisions.sorted { $0.key < $1.key }
            statements.append("""
                INSERT INTO host_revisions (host, revision, previous, digest)
                SELECT * FROM unnest(\(revisions.map(\.key)), \(revisions.map { Int64($0.value.revision) }), \(revisions.map { Int64($0.value.previous) }),
                                     \(revisions.map { Int64(bitPattern: $0.value.digest) }))
                ON CONFLICT (host) DO UPDATE SET revision = excluded.revision, previous = excluded.previous, digest = excluded.digest
                """)
        }
        statements.append("COMMIT")
        do {
            _ = try connector.runAll(statements)
        } catch {
            // A statement refused (a constraint, the fence): the transaction is aborted, COMMIT turned into
            // ROLLBACK, nothing written. Unreachable: the connection is gone, and with it the transaction,
            // unless COMMIT had already been taken: `unavailable` says the outcome is unknown.
            if error.kind == .rejected { _ = try? connector.run("ROLLBACK") }
            throw error
        }
    }

    // MARK: LeaseStore

    static func lease(_ result: PostgresQueryResult) throws -> Lease {
        guard let row = result.first else { throw StoreError(.rejected, "the leader row is missing (was the schema changed by hand?)") }
        let (epoch, holder, control, remaining) = try row.decode((Int64, String, String, Double).self)
        return Lease(epoch: UInt64(epoch), holder: holder, control: control, remaining: remaining)
    }

    static let leaseColumns = "epoch, holder, control, extract(epoch FROM expires - clock_timestamp())::float8"

    public func acquire(holder: String, control: String, seconds: Double) throws -> Lease {
        let taken = try connector.run("""
            UPDATE leader SET epoch = epoch + 1, holder = \(holder), control = \(control),
                              expires = clock_timestamp() + make_interval(secs => \(seconds))
            WHERE id = 1 AND (expires <= clock_timestamp() OR holder = '' OR holder = \(holder))
            RETURNING \(unescaped: Self.leaseColumns)
            """)
        if !taken.rows.isEmpty { return try Self.lease(taken) }
        return try current()
    }

    public func renew(epoch: UInt64, seconds: Double) throws -> Bool {
        let renewed = try connector.run("""
            UPDATE leader SET expires = clock_timestamp() + make_interval(secs => \(seconds))
            WHERE id = 1 AND epoch = \(Int64(epoch)) AND expires > clock_timestamp() RETURNING epoch
            """)
        return !renewed.rows.isEmpty
    }

    public func release(epoch: UInt64) throws {
        try connector.run("UPDATE leader SET holder = '', expires = '-infinity' WHERE id = 1 AND epoch = \(Int64(epoch))")
    }

    public func current() throws -> Lease {
        try Self.lease(connector.run("SELECT \(unescaped: Self.leaseColumns) FROM leader WHERE id = 1"))
    }
}
