import ArgumentParser
import VNetCore
import VNetProto

/// Names a group: `--group NAME [--user USER]`.
struct GroupName: ParsableArguments {
    @Option(help: "The group's name.") var group: String
    @Option(help: "The group's owner (default admin).") var user: String?
    var ref: Vnet_V1_GroupRef {
        var ref = Vnet_V1_GroupRef()
        ref.group = group; ref.user = user ?? ""
        return ref
    }
}

/// `vnetctl create-group` / `delete-group`
struct CreateGroupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create-group", abstract: "Create a security group (and take a network for it).")
    @OptionGroup var name: GroupName
    @OptionGroup var bus: BusOptions

    func run() throws {
        try bus.change(.createGroup(name.ref), wait: nil) { reply in
            let group = reply.groups.first.map(GroupView.init)
            return "created \(name.user ?? "admin")/\(name.group)\(group.map { " on \($0.network ?? "-")\($0.vlan.map { ", VLAN \($0)" } ?? "")" } ?? ""); revision \(reply.revision)\n"
        }
    }
}

struct DeleteGroupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete-group", abstract: "Delete a security group with no instances.")
    @OptionGroup var name: GroupName
    @OptionGroup var wait: WaitOptions
    @OptionGroup var bus: BusOptions

    func run() throws {
        try bus.change(.deleteGroup(name.ref), wait: wait) { "deleted \(name.user ?? "admin")/\(name.group); revision \($0.revision)\n" }
    }
}

/// The rule of `authorize` and `revoke`: `--protocol tcp|udp|icmp|all [--ports 22|1000-2000] [--icmp-type T [--icmp-code C]]
/// (--source-cidr CIDR | --source-group [USER/]NAME)`.
struct RuleOptions: ParsableArguments {
    @Option(name: .customLong("protocol")) var proto: String
    @Option var ports: String?
    @Option(name: .customLong("icmp-type")) var icmpType: Int?
    @Option(name: .customLong("icmp-code")) var icmpCode: Int?
    @Option(name: .customLong("source-cidr")) var sourceCIDR: String?
    @Option(name: .customLong("source-group")) var sourceGroup: String?

    func validate() throws {
        guard ["tcp", "udp", "icmp", "all"].contains(proto) else { throw ValidationError("--protocol is tcp, udp, icmp or all") }
        if (sourceCIDR == nil) == (sourceGroup == nil) { throw ValidationError("give one of --source-cidr and --source-group") }
        if proto == "icmp", ports != nil { throw ValidationError("icmp has no --ports; use --icmp-type/--icmp-code") }
        if proto != "icmp", ports == nil { throw ValidationError("\(proto) needs --ports (22 or 1000-2000)") }
    }

    func change(_ group: GroupName) throws -> Vnet_V1_RuleChange {
        var change = Vnet_V1_RuleChange()
        change.user = group.user ?? ""; change.group = group.group
        var range: ClosedRange<Int>?
        if let ports {
            let ends = ports.split(separator: "-", omittingEmptySubsequences: false)
            guard ends.count <= 2, let low = Int(ends[0]), let high = Int(ends.last!), low <= high else {
                throw CommandFailure.usage("--ports '\(ports)' is not a port or a range low-high")
            }
            range = low...high
        }
        // Through the core's one textual conversion and the wire's one: what is checked here is what the
        // coordinator checks again.
        do { change.traffic = try SecurityRule.Traffic(protocolName: proto, ports: range, icmpType: icmpType, icmpCode: icmpCode).wire } catch {
            throw CommandFailure.usage(error.message)
        }
        change.sourceCidr = sourceCIDR ?? ""; change.sourceGroup = sourceGroup ?? ""
        return change
    }
}

struct AuthorizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "authorize", abstract: "Let traffic into a group.")
    @OptionGroup var name: GroupName
    @OptionGroup var rule: RuleOptions
    @OptionGroup var wait: WaitOptions
    @OptionGroup var bus: BusOptions

    func run() throws {
        try bus.change(.authorize(try rule.change(name)), wait: wait) { "authorized; revision \($0.revision)\n" }
    }
}

struct RevokeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Remove a rule from a group.")
    @OptionGroup var name: GroupName
    @OptionGroup var rule: RuleOptions
    @OptionGroup var wait: WaitOptions
    @OptionGroup var bus: BusOptions

    func run() throws {
        try bus.change(.revoke(try rule.change(name)), wait: wait) { "revoked; revision \($0.revision)\n" }
    }
}

struct DescribeGroupsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "describe-groups", abstract: "Groups, their networks and rules.")
    @OptionGroup var bus: BusOptions

    func run() throws {
        let groups = try bus.call(.describeGroups(Vnet_V1_DescribeGroups())).groups.map(GroupView.init)
        if bus.json { try Output.json(groups); return }
        var out = table([["GROUP", "NETWORK", "VLAN", "INSTANCES"]] + groups.map {
            ["\($0.user)/\($0.name)", $0.network ?? "-", $0.vlan.map(String.init) ?? "-", String($0.instances)]
        })
        for group in groups where !group.rules.isEmpty {
            out += "\(group.user)/\(group.name):\n" + group.rules.map { "  allow \($0.text)\n" }.joined()
        }
        Output.text(out)
    }
}
