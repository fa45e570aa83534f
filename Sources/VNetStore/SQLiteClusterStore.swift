import Foundation
import GRDB
import VNetCore

/// `ClusterStore` in SQLite (GRDB), in `STATE_DIR/cluster.sqlite`.
///
/// WAL with synchronous=FULL: a commit that returned survives kill -9 and power loss. UNIQUE constraints on
/// instance addresses and MACs, and on group networks, are a second guard (after the Allocator) against
/// anything being handed out twice.
///
/// One coordinator owns the file: it takes the next epoch when it starts (`startEpoch`), and every commit
/// checks that epoch, so that a second coordinator started on the same directory by mistake fences the first.
public final class SQLiteClusterStore: ClusterStore {
    let queue: DatabaseQueue
    public let path: String
    public var location: String { path }

    public init(directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = "\(directory)/cluster.sqlite"
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        queue = try DatabaseQueue(path: path, configuration: configuration)
        try queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA journal_mode = WAL") }
        try Self.migrator.migrate(queue)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
            CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
            CREATE TABLE nodes (name TEXT PRIMARY KEY, interface TEXT NOT NULL, bridge TEXT NOT NULL);
            CREATE TABLE host_revisions (host TEXT PRIMARY KEY, revision INTEGER NOT NULL, previous INTEGER NOT NULL,
                                         digest INTEGER NOT NULL);
            CREATE TABLE groups (user TEXT NOT NULL, name TEXT NOT NULL, network INTEGER NOT NULL UNIQUE,
                                 rules TEXT NOT NULL, PRIMARY KEY (user, name));
            CREATE TABLE instances (id INTEGER PRIMARY KEY, node TEXT NOT NULL, user TEXT, grp TEXT,
                                    address INTEGER UNIQUE, mac INTEGER NOT NULL UNIQUE, vif TEXT);
            CREATE TABLE public_ips (address INTEGER PRIMARY KEY, instance INTEGER UNIQUE);
            INSERT INTO meta (key, value) VALUES ('revision', 0);
            """)
        }
        // The EC2 API's users: a group's description, and who allocated a public address ('' = the operator).
        migrator.registerMigration("v2") { db in
            try db.execute(sql: """
            ALTER TABLE groups ADD COLUMN description TEXT NOT NULL DEFAULT '';
            ALTER TABLE public_ips ADD COLUMN owner TEXT NOT NULL DEFAULT '';
            """)
        }
        // The epoch: one more at each start of a coordinator, so that agents see every start as a newer one.
        migrator.registerMigration("v3") { db in
            try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('epoch', 0)")
        }
        return migrator
    }

    /// The epoch of a coordinator starting now on this file: one more than any before.
    public func startEpoch() throws -> UInt64 {
        try queue.write { db in
            try db.execute(sql: "UPDATE meta SET value = value + 1 WHERE key = 'epoch'")
            return UInt64(try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'epoch'") ?? 1)
        }
    }

    /// A commit with no epoch check (tests and tools that own the file).
    public func commit(_ change: StoreChange) throws { try commit(change, epoch: 0) }

    public func load() throws -> StoredCluster {
        try queue.read { db in
            var state = ClusterState(frontend: "")
            var nodeRevisions: [String: NodeRevision] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT name, interface, bridge FROM nodes") {
                let name: String = row["name"]
                state.nodes[name] = .init(name: name, interface: row["interface"], bridge: row["bridge"])
            }
            for row in try Row.fetchAll(db, sql: "SELECT host, revision, previous, digest FROM host_revisions") {
                nodeRevisions[row["host"]] = NodeRevision(revision: UInt64(row["revision"] as Int64), previous: UInt64(row["previous"] as Int64),
                                                         digest: UInt64(bitPattern: row["digest"] as Int64))
            }
            for row in try Row.fetchAll(db, sql: "SELECT user, name, network, rules, description FROM groups") {
                let id = GroupID(user: row["user"], name: row["name"])
                let rules: [SecurityRule]
                do { rules = try RuleRecord.decode(row["rules"] as String) } catch {
                    throw ClusterError("the stored rules of group \(id) cannot be read: \(error)")
                }
                state.groups[id] = .init(id: id, rules: rules, network: row["network"], description: row["description"])
            }
            for row in try Row.fetchAll(db, sql: "SELECT id, node, user, grp, address, mac, vif FROM instances") {
                let id = InstanceID(number: UInt32(row["id"] as Int64))
                let user: String? = row["user"], group: String? = row["grp"]
                let address: Int64? = row["address"]
                state.instances[id] = .init(id: id, node: row["node"],
                                            group: user.flatMap { u in group.map { GroupID(user: u, name: $0) } },
                                            address: address.map { IPv4Address(UInt32($0)) },
                                            mac: MACAddress(UInt64(row["mac"] as Int64)), hypervisorVif: row["vif"])
            }
            for row in try Row.fetchAll(db, sql: "SELECT address, instance, owner FROM public_ips") {
                let instance: Int64? = row["instance"], owner: String = row["owner"]
                let address = IPv4Address(UInt32(row["address"] as Int64))
                state.publicIPs[address] = .some(instance.map { InstanceID(number: UInt32($0)) })
                if !owner.isEmpty { state.publicIPOwners[address] = owner }
            }
            let revision = try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'revision'") ?? 0
            return StoredCluster(state: state, revision: UInt64(revision), nodeRevisions: nodeRevisions)
        }
    }

    /// Statements are prepared once per connection (`cachedStatement`): a commit of 1000 new instances runs
    /// some 3000 of them, and compiling each again was a large part of the commit (issue 16's bus figures).
    public func commit(_ change: StoreChange, epoch: UInt64) throws {
        try queue.write { db in
            if epoch != 0 {
                let current = try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'epoch'") ?? 0
                guard UInt64(current) == epoch else {
                    throw StoreError(.fenced, "\(path) now belongs to another coordinator (epoch \(current), this one has \(epoch)): two coordinators were started on one state directory")
                }
            }
            // Deletes first, so that a row re-using a freed address or MAC in the same batch does not trip UNIQUE.
            for id in change.deletedInstances {
                try db.cachedStatement(sql: "DELETE FROM instances WHERE id = ?").execute(arguments: [Int64(id.number)])
            }
            for address in change.releasedPublicIPs {
                try db.cachedStatement(sql: "DELETE FROM public_ips WHERE address = ?").execute(arguments: [Int64(address.value)])
            }
            for id in change.deletedGroups {
                try db.cachedStatement(sql: "DELETE FROM groups WHERE user = ? AND name = ?").execute(arguments: [id.user, id.name])
            }
            for node in change.nodes {
                try db.cachedStatement(sql: """
                    INSERT INTO nodes (name, interface, bridge) VALUES (?, ?, ?)
                    ON CONFLICT(name) DO UPDATE SET interface = excluded.interface, bridge = excluded.bridge
                    """).execute(arguments: [node.name, node.interface, node.bridge])
            }
            for group in change.groups {
                try db.cachedStatement(sql: """
                    INSERT INTO groups (user, name, network, rules, description) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT(user, name) DO UPDATE SET network = excluded.network, rules = excluded.rules,
                                                          description = excluded.description
                    """).execute(arguments: [group.id.user, group.id.name, group.network, try RuleRecord.encode(group.rules), group.description])
            }
            // Instances that changed are rewritten: free their unique values first, then insert.
            for instance in change.instances {
                try db.cachedStatement(sql: "DELETE FROM instances WHERE id = ?").execute(arguments: [Int64(instance.id.number)])
            }
            for instance in change.instances {
                try db.cachedStatement(sql: "INSERT INTO instances (id, node, user, grp, address, mac, vif) VALUES (?, ?, ?, ?, ?, ?, ?)")
                    .execute(arguments: [Int64(instance.id.number), instance.node, instance.group?.user, instance.group?.name,
                                         instance.address.map { Int64($0.value) }, Int64(instance.mac.value), instance.hypervisorVif])
            }
            for (address, holder, owner) in change.publicIPs {
                try db.cachedStatement(sql: "UPDATE public_ips SET instance = NULL WHERE instance = ? AND address != ?")
                    .execute(arguments: [holder.map { Int64($0.number) }, Int64(address.value)])
                try db.cachedStatement(sql: """
                    INSERT INTO public_ips (address, instance, owner) VALUES (?, ?, ?)
                    ON CONFLICT(address) DO UPDATE SET instance = excluded.instance, owner = excluded.owner
                    """).execute(arguments: [Int64(address.value), holder.map { Int64($0.number) }, owner])
            }
            for (host, revision) in change.nodeRevisions {
                try db.cachedStatement(sql: """
                    INSERT INTO host_revisions (host, revision, previous, digest) VALUES (?, ?, ?, ?)
                    ON CONFLICT(host) DO UPDATE SET revision = excluded.revision, previous = excluded.previous, digest = excluded.digest
                    """).execute(arguments: [host, Int64(revision.revision), Int64(revision.previous), Int64(bitPattern: revision.digest)])
            }
            try db.execute(sql: "UPDATE meta SET value = ? WHERE key = 'revision'", arguments: [Int64(change.revision)])
        }
    }
}

/// A security rule as stored: a small JSON object per rule, readable with the sqlite3 shell.
public struct RuleRecord: Codable {
    var proto: String
    var from: Int?
    var to: Int?
    var type: Int?
    var code: Int?
    var cidr: String?
    var sourceUser: String?
    var sourceGroup: String?

    public static func encode(_ rules: [SecurityRule]) throws -> String {
        let records = rules.map { rule -> RuleRecord in
            var record = RuleRecord(proto: rule.protocolName)
            switch rule.traffic {
            case .tcp(let ports), .udp(let ports): record.from = ports.lowerBound; record.to = ports.upperBound
            case .icmp(let type, let code): record.type = type; record.code = code
            case .all: break
            }
            switch rule.source {
            case .cidr(let network): record.cidr = network.description
            case .group(let group): record.sourceUser = group.user; record.sourceGroup = group.name
            }
            return record
        }
        return String(decoding: try JSONEncoder().encode(records), as: UTF8.self)
    }

    public static func decode(_ text: String) throws -> [SecurityRule] {
        try JSONDecoder().decode([RuleRecord].self, from: Data(text.utf8)).map { record in
            // Never guessed: a rule read as another protocol would open or close what nobody asked for.
            var ports: ClosedRange<Int>?
            if record.proto == "tcp" || record.proto == "udp" {
                let low = record.from ?? 1, high = record.to ?? 65535
                guard low <= high else { throw ClusterError(field: "from", "ports \(low)-\(high) are not a range") }
                ports = low...high
            }
            let traffic = try SecurityRule.Traffic(protocolName: record.proto, ports: ports, icmpType: record.type, icmpCode: record.code)
            let source: SecurityRule.Source
            if let cidr = record.cidr, let network = IPv4Network(cidr) { source = .cidr(network) }
            else { source = .group(GroupID(user: record.sourceUser ?? "", name: record.sourceGroup ?? "")) }
            return SecurityRule(traffic, from: source)
        }
    }

    init(proto: String) { self.proto = proto }
}
