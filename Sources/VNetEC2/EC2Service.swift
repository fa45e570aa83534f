import VNetCore
import VNetProto

/// How the service reaches the coordinator: one control request, one reply. A refusal comes back as a reply
/// with `ok` false; only the absence of a reply throws (`EC2Error.unavailable`).
public protocol ControlChannel {
    func call(_ op: Vnet_V1_ControlRequest.OneOf_Op) throws(EC2Error) -> Vnet_V1_ControlReply
}

/// One answer: HTTP status and XML document, and for logs and metrics the action and error code.
public struct EC2Response: Sendable {
    public var status: Int
    public var body: String
    public var action: String
    public var errorCode: String?

    public init(status: Int, body: String, action: String, errorCode: String?) {
        self.status = status; self.body = body; self.action = action; self.errorCode = errorCode
    }
}

/// The ten network operations of Eucalyptus 1.5.2's cloud controller (and DescribeInstances, with the
/// network view vnet has), as EC2's Query API has them, carried out as control requests.
///
/// Semantics kept from EC2: GroupName or GroupId; IpPermissions with tcp, udp, icmp or -1, port ranges, CIDR
/// and source-group sources, all of one request applied or none; EC2's error codes. A user sees and changes
/// only its own groups and addresses; an admin key sees all. The user is the key's, never a parameter.
public struct EC2Service: Sendable {
    public static let defaultVersion = "2016-11-15"
    public static let actions = ["CreateSecurityGroup", "DeleteSecurityGroup", "DescribeSecurityGroups",
                                 "AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress", "AllocateAddress",
                                 "ReleaseAddress", "DescribeAddresses", "AssociateAddress", "DisassociateAddress",
                                 "DescribeInstances"]

    public init() {}

    public func handle(_ parameters: QueryParameters, caller: AccessKeys.Key, requestID: String, channel: some ControlChannel) -> EC2Response {
        let action = parameters["Action"] ?? ""
        do throws(EC2Error) {
            guard !action.isEmpty else { throw EC2Error.missing("Action") }
            guard Self.actions.contains(action) else {
                throw EC2Error("InvalidAction", "The action \(action.prefix(64)) is not valid for this web service (vnet serves \(Self.actions.joined(separator: ", ")))")
            }
            let version = try Self.version(parameters)
            let context = Context(parameters: parameters, caller: caller, channel: channel, listing: GroupListing())
            let body = try context.perform(action)
            return EC2Response(status: 200, body: EC2XML.response(action: action, version: version, requestID: requestID, body),
                               action: action, errorCode: nil)
        } catch {
            return EC2Response(status: error.status, body: EC2XML.error(error, requestID: requestID), action: action, errorCode: error.code)
        }
    }

    /// `Version=YYYY-MM-DD`; absent: the version of EC2's API the gateway follows.
    static func version(_ parameters: QueryParameters) throws(EC2Error) -> String {
        guard let version = parameters["Version"] else { return defaultVersion }
        let bytes = Array(version.utf8)
        guard bytes.count == 10, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
              bytes.enumerated().allSatisfy({ [4, 7].contains($0.offset) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0.element) }) else {
            throw EC2Error("NoSuchVersion", "The requested version (\(version.prefix(32))) of service AmazonEC2 does not exist")
        }
        return version
    }
}

/// One request being carried out.
struct Context<Channel: ControlChannel> {
    let parameters: QueryParameters
    let caller: AccessKeys.Key
    let channel: Channel
    /// The coordinator's group listing, fetched once per request and only when a GroupId must be resolved
    /// (an authorize by GroupName with CIDR sources costs one bus request, however many groups there are).
    let listing: GroupListing

    typealias Body = (inout EC2XML) -> Void

    /// Parameters every action takes besides its own (X-Amz-*: a presigned URL's signature).
    static var common: Set<String> { ["Action", "Version", "DryRun"] }

    func only(_ names: Set<String>, prefixes: [String] = []) throws(EC2Error) {
        try QueryParameters(parameters.values.filter { !$0.key.hasPrefix("X-Amz-") }).checkOnly(names.union(Self.common), prefixes: prefixes)
    }

    /// After every check, before any change: EC2's DryRun answers whether the request would be carried out.
    func dryRunCheck() throws(EC2Error) {
        switch parameters["DryRun"]?.lowercased() {
        case nil, "false": return
        case "true": throw EC2Error("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", status: 412)
        default: throw EC2Error.invalid("DryRun", "must be true or false")
        }
    }

    func perform(_ action: String) throws(EC2Error) -> Body {
        switch action {
        case "CreateSecurityGroup": return try createGroup()
        case "DeleteSecurityGroup": return try deleteGroup()
        case "DescribeSecurityGroups": return try describeGroups()
        case "AuthorizeSecurityGroupIngress": return try changeRules(adding: true)
        case "RevokeSecurityGroupIngress": return try changeRules(adding: false)
        case "AllocateAddress": return try allocateAddress()
        case "ReleaseAddress": return try releaseAddress()
        case "DescribeAddresses": return try describeAddresses()
        case "AssociateAddress": return try associateAddress()
        case "DisassociateAddress": return try disassociateAddress()
        case "DescribeInstances": return try describeInstances()
        default: throw EC2Error("InvalidAction", "The action \(action.prefix(64)) is not valid for this web service")
        }
    }

    // MARK: the coordinator

    /// Sends `op`; a refusal becomes the EC2 error its kind maps to (`codes` overrides the defaults where
    /// the action decides, e.g. an address named by allocation id).
    func call(_ op: Vnet_V1_ControlRequest.OneOf_Op, _ codes: [ClusterError.Kind: String] = [:]) throws(EC2Error) -> Vnet_V1_ControlReply {
        let reply = try channel.call(op)
        guard reply.ok else {
            let kind = ClusterError.Kind(rawValue: reply.errorKind) ?? .invalid
            // No coordinator leads (a failover under way): EC2's answer to retry later.
            if kind == .notLeader { throw EC2Error.unavailable(reply.error) }
            throw EC2Error(codes[kind] ?? Self.defaultCode(kind), reply.error)
        }
        return reply
    }

    static func defaultCode(_ kind: ClusterError.Kind) -> String {
        switch kind {
        case .invalid: "InvalidParameterValue"
        case .unsupportedMode: "UnsupportedOperation"
        case .groupNotFound: "InvalidGroup.NotFound"
        case .groupExists: "InvalidGroup.Duplicate"
        case .ruleExists: "InvalidPermission.Duplicate"
        case .ruleNotFound: "InvalidPermission.NotFound"
        case .groupInUse: "DependencyViolation"
        case .addressNotFound: "InvalidAddress.NotFound"
        case .addressLimit: "AddressLimitExceeded"
        case .addressInUse: "InvalidIPAddress.InUse"
        case .instanceNotFound: "InvalidInstanceID.NotFound"
        case .capacity: "ResourceLimitExceeded"
        case .notLeader: "Unavailable"
        }
    }

    /// Every group (the gateway's key is an admin's); what the caller may see is filtered here.
    func allGroups() throws(EC2Error) -> [Vnet_V1_GroupInfo] {
        if let groups = listing.groups { return groups }
        let groups = try call(.describeGroups(Vnet_V1_DescribeGroups())).groups
        listing.groups = groups
        return groups
    }

    func visible(_ group: Vnet_V1_GroupInfo) -> Bool { caller.admin || group.user == caller.user }

    /// The operator's key acts on the operator's own objects unless it names another user's by id.
    var owner: String { caller.user }
    /// For address requests: the user whose addresses may be named ("" lets an admin name any).
    var addressUser: String { caller.admin ? "" : caller.user }

    // MARK: groups

    func createGroup() throws(EC2Error) -> Body {
        try only(["GroupName", "GroupDescription", "VpcId"], prefixes: ["TagSpecification"])
        let name = try parameters.required("GroupName")
        let description = try parameters.required("GroupDescription")
        if parameters["VpcId"] != nil { throw EC2Error("UnsupportedOperation", "vnet has no VPCs: groups are EC2-Classic groups, without VpcId") }
        if parameters.values.keys.contains(where: { $0.hasPrefix("TagSpecification.") }) {
            throw EC2Error("UnsupportedOperation", "vnet keeps no tags on groups")
        }
        if name.lowercased().hasPrefix("sg-") { throw EC2Error.invalid("GroupName", "group names may not start with sg-") }
        if let problem = NameRules.groupNameProblem(name) { throw EC2Error.invalid("GroupName", problem) }
        if let problem = NameRules.descriptionProblem(description) { throw EC2Error.invalid("GroupDescription", problem) }
        try dryRunCheck()
        var ref = Vnet_V1_GroupRef()
        ref.user = owner; ref.group = name; ref.description_p = description
        _ = try call(.createGroup(ref), [.capacity: "SecurityGroupLimitExceeded"])
        let id = EC2Identifiers.groupID(GroupID(user: owner, name: name))
        return { xml in
            xml.element("return", true)
            xml.element("groupId", id)
        }
    }

    func deleteGroup() throws(EC2Error) -> Body {
        try only(["GroupName", "GroupId"])
        let group = try targetGroup()
        try dryRunCheck()
        var ref = Vnet_V1_GroupRef()
        ref.user = group.user; ref.group = group.name
        _ = try call(.deleteGroup(ref))
        return { $0.element("return", true) }
    }

    /// The group a request acts on: GroupId (any group the caller sees) or GroupName (the caller's own).
    func targetGroup() throws(EC2Error) -> GroupID {
        let name = parameters["GroupName"], id = parameters["GroupId"]
        switch (name, id) {
        case (let name?, nil) where !name.isEmpty:
            return GroupID(user: owner, name: name)
        case (nil, let id?) where !id.isEmpty:
            return try group(byID: id, among: allGroups().filter(visible))
        case (.some, .some):
            throw EC2Error.invalidCombination("GroupName and GroupId cannot both be given")
        default:
            throw EC2Error.missing("GroupName or GroupId")
        }
    }

    func group(byID id: String, among groups: [Vnet_V1_GroupInfo]) throws(EC2Error) -> GroupID {
        guard EC2Identifiers.isGroupID(id) else { throw EC2Error("InvalidGroupId.Malformed", "Invalid id: \"\(id.prefix(64))\" (expecting \"sg-...\")") }
        guard let found = groups.lazy.map({ GroupID(user: $0.user, name: $0.group) }).first(where: { EC2Identifiers.groupID($0) == id }) else {
            throw EC2Error("InvalidGroup.NotFound", "The security group '\(id)' does not exist")
        }
        return found
    }

    func describeGroups() throws(EC2Error) -> Body {
        try only(["MaxResults", "NextToken"], prefixes: ["GroupName", "GroupId", "Filter"])
        let names = try parameters.list("GroupName"), ids = try parameters.list("GroupId")
        let filters = try Filters(parameters, known: ["group-name", "group-id", "owner-id", "description"])
        try dryRunCheck()
        let all = try allGroups()
        var shown = all.filter(visible)
        for id in ids where !EC2Identifiers.isGroupID(id) {
            throw EC2Error("InvalidGroupId.Malformed", "Invalid id: \"\(id.prefix(64))\" (expecting \"sg-...\")")
        }
        if !names.isEmpty || !ids.isEmpty {
            // A name is the caller's own group (an admin's: any user's of that name); every one named must exist.
            for name in names where !shown.contains(where: { $0.group == name && (caller.admin || $0.user == owner) }) {
                throw EC2Error("InvalidGroup.NotFound", "The security group '\(name)' does not exist")
            }
            for id in ids where !shown.contains(where: { EC2Identifiers.groupID(GroupID(user: $0.user, name: $0.group)) == id }) {
                throw EC2Error("InvalidGroup.NotFound", "The security group '\(id)' does not exist")
            }
            shown = shown.filter { group in
                names.contains(group.group) && (caller.admin || group.user == owner)
                    || ids.contains(EC2Identifiers.groupID(GroupID(user: group.user, name: group.group)))
            }
        }
        shown = shown.filter { group in
            filters.matches(["group-name": group.group, "group-id": EC2Identifiers.groupID(GroupID(user: group.user, name: group.group)),
                             "owner-id": group.user, "description": group.description_p])
        }
        return { xml in
            xml.items("securityGroupInfo", shown) { xml, group in
                xml.element("ownerId", group.user)
                xml.element("groupId", EC2Identifiers.groupID(GroupID(user: group.user, name: group.group)))
                xml.element("groupName", group.group)
                xml.element("groupDescription", group.description_p)
                xml.items("ipPermissions", Self.permissions(of: group)) { xml, permission in
                    permission.write(&xml)
                }
                xml.start("ipPermissionsEgress")
                xml.end()
            }
        }
    }

    /// A group's rules as EC2 lists them: one IpPermission per protocol and port range, with every CIDR
    /// and every source group of that traffic.
    static func permissions(of group: Vnet_V1_GroupInfo) -> [Permission] {
        var order: [WireKey] = []
        var byKey: [WireKey: Permission] = [:]
        for rule in group.rules {
            let key = WireKey(rule.traffic)
            if byKey[key] == nil { order.append(key); byKey[key] = Permission(traffic: rule.traffic) }
            if !rule.sourceCidr.isEmpty { byKey[key]!.cidrs.append(rule.sourceCidr) }
            if !rule.sourceGroup.isEmpty, let source = GroupID(rule.sourceGroup) { byKey[key]!.groups.append(source) }
        }
        return order.map { byKey[$0]! }
    }

    struct WireKey: Hashable {
        var proto: Int, from: UInt32, to: UInt32, type: Int32, code: Int32
        init(_ wire: WireTraffic) { proto = wire.protocol.rawValue; from = wire.fromPort; to = wire.toPort; type = wire.icmpType; code = wire.icmpCode }
    }

    struct Permission {
        var traffic: WireTraffic
        var cidrs: [String] = []
        var groups: [GroupID] = []

        func write(_ xml: inout EC2XML) {
            switch traffic.protocol {
            case .tcp, .udp:
                xml.element("ipProtocol", traffic.protocol == .tcp ? "tcp" : "udp")
                xml.element("fromPort", Int(traffic.fromPort))
                xml.element("toPort", Int(traffic.toPort))
            case .icmp:
                xml.element("ipProtocol", "icmp")
                xml.element("fromPort", Int(traffic.icmpType))
                xml.element("toPort", Int(traffic.icmpCode))
            default:
                xml.element("ipProtocol", "-1")
            }
            xml.items("groups", groups) { xml, group in
                xml.element("userId", group.user)
                xml.element("groupId", EC2Identifiers.groupID(group))
                xml.element("groupName", group.name)
            }
            xml.items("ipRanges", cidrs) { xml, cidr in xml.element("cidrIp", cidr) }
            xml.start("ipv6Ranges"); xml.end()
            xml.start("prefixListIds"); xml.end()
        }
    }

    func changeRules(adding: Bool) throws(EC2Error) -> Body {
        try only(["GroupName", "GroupId", "IpProtocol", "FromPort", "ToPort", "CidrIp", "SourceSecurityGroupName", "SourceSecurityGroupOwnerId"],
                 prefixes: ["IpPermissions"])
        let group = try targetGroup()
        let rules = try ruleChanges()
        try dryRunCheck()
        var changes = Vnet_V1_RuleChanges()
        changes.user = group.user; changes.group = group.name; changes.rules = rules
        _ = try call(adding ? .authorizeRules(changes) : .revokeRules(changes))
        return { $0.element("return", true) }
    }

    /// Every (traffic, source) pair the request names, from IpPermissions.N or the flat parameters of EC2's
    /// older API (IpProtocol, FromPort, ToPort, CidrIp, SourceSecurityGroupName/OwnerId).
    func ruleChanges() throws(EC2Error) -> [Vnet_V1_RuleChange] {
        let listed = try parameters.members("IpPermissions")
        let flat = ["IpProtocol", "FromPort", "ToPort", "CidrIp", "SourceSecurityGroupName", "SourceSecurityGroupOwnerId"].filter { parameters[$0] != nil }
        if !listed.isEmpty, !flat.isEmpty { throw EC2Error.invalidCombination("IpPermissions and \(flat[0]) cannot both be given") }
        var rules: [Vnet_V1_RuleChange] = []
        if listed.isEmpty {
            guard !flat.isEmpty else { throw EC2Error.missing("IpPermissions") }
            var permission: [String: String] = [:]
            for name in ["IpProtocol", "FromPort", "ToPort"] { permission[name] = parameters[name] }
            if let cidr = parameters["CidrIp"] { permission["IpRanges.1.CidrIp"] = cidr }
            if let source = parameters["SourceSecurityGroupName"] {
                permission["Groups.1.GroupName"] = source
                if let user = parameters["SourceSecurityGroupOwnerId"] { permission["Groups.1.UserId"] = user }
            } else if parameters["SourceSecurityGroupOwnerId"] != nil {
                throw EC2Error.missing("SourceSecurityGroupName")
            }
            if permission["IpProtocol"] == nil {
                // The older API's group-only form: every protocol from the source group.
                guard permission["Groups.1.GroupName"] != nil else { throw EC2Error.missing("IpProtocol") }
                permission["IpProtocol"] = "-1"
            }
            rules = try changes(QueryParameters(permission), field: "IpPermissions.1")
        } else {
            for (index, permission) in listed.enumerated() {
                rules += try changes(permission, field: "IpPermissions.\(index + 1)")
            }
        }
        return rules
    }

    func changes(_ permission: QueryParameters, field: String) throws(EC2Error) -> [Vnet_V1_RuleChange] {
        for name in permission.values.keys.sorted() {
            if name.hasPrefix("Ipv6Ranges.") || name.hasPrefix("PrefixListIds.") {
                throw EC2Error("UnsupportedOperation", "\(field).\(name): vnet's groups filter IPv4 only (no IPv6 ranges, no prefix lists)")
            }
        }
        do throws(EC2Error) {
            try permission.checkOnly(["IpProtocol", "FromPort", "ToPort"], prefixes: ["IpRanges", "Groups"])
        } catch {
            throw EC2Error(error.code, error.message.replacingOccurrences(of: "parameter ", with: "parameter \(field)."))
        }
        let traffic = try Self.traffic(protocol: permission["IpProtocol"], from: permission.integer("FromPort"),
                                       to: permission.integer("ToPort"), field: field)
        var sources: [(cidr: String, group: String)] = []
        for (index, range) in try permission.members("IpRanges").enumerated() {
            try range.checkOnly(["CidrIp", "Description"])
            guard let cidr = range["CidrIp"], !cidr.isEmpty else { throw EC2Error.missing("\(field).IpRanges.\(index + 1).CidrIp") }
            guard let network = IPv4Network(cidr) else {
                throw EC2Error.invalid("\(field).IpRanges.\(index + 1).CidrIp", "CIDR block \(cidr.prefix(64)) is malformed")
            }
            sources.append((network.description, ""))
        }
        for (index, pair) in try permission.members("Groups").enumerated() {
            try pair.checkOnly(["GroupId", "GroupName", "UserId", "Description", "VpcId", "VpcPeeringConnectionId", "PeeringStatus"])
            let source: GroupID
            if let id = pair["GroupId"], !id.isEmpty {
                source = try group(byID: id, among: allGroups())
            } else if let name = pair["GroupName"], !name.isEmpty {
                let user = pair["UserId"].flatMap { $0.isEmpty ? nil : $0 } ?? owner
                if let problem = NameRules.userNameProblem(user) { throw EC2Error.invalid("\(field).Groups.\(index + 1).UserId", problem) }
                source = GroupID(user: user, name: name)
            } else {
                throw EC2Error.missing("\(field).Groups.\(index + 1).GroupId or GroupName")
            }
            sources.append(("", source.description))
        }
        guard !sources.isEmpty else { throw EC2Error.missing("\(field).IpRanges or \(field).Groups") }
        return sources.map { source in
            var change = Vnet_V1_RuleChange()
            change.traffic = traffic.wire
            change.sourceCidr = source.cidr
            change.sourceGroup = source.group
            return change
        }
    }

    /// EC2's IpProtocol (a name or number) and ports: for tcp and udp a port range (0 is read as 1: no
    /// packet has port 0), for icmp FromPort the type and ToPort the code (-1: any), for -1 every protocol.
    static func traffic(protocol name: String?, from: Int?, to: Int?, field: String) throws(EC2Error) -> SecurityRule.Traffic {
        guard let name, !name.isEmpty else { throw EC2Error.missing("\(field).IpProtocol") }
        let traffic: SecurityRule.Traffic
        switch name.lowercased() {
        case "tcp", "6", "udp", "17":
            guard let from, let to else {
                throw EC2Error.invalid("\(field).FromPort", "tcp and udp need FromPort and ToPort")
            }
            guard (0...65535).contains(from), (0...65535).contains(to), max(from, 1) <= to else {
                throw EC2Error.invalid("\(field).FromPort", "ports \(from)-\(to) are not a range within 0-65535")
            }
            let ports = max(from, 1)...to
            traffic = ["tcp", "6"].contains(name.lowercased()) ? .tcp(ports) : .udp(ports)
        case "icmp", "1":
            let type = from ?? -1, code = to ?? -1
            guard (-1...255).contains(type), (-1...255).contains(code) else {
                throw EC2Error.invalid("\(field).FromPort", "ICMP type and code must lie in 0-255, or be -1 for any")
            }
            guard type >= 0 || code < 0 else { throw EC2Error.invalid("\(field).ToPort", "an ICMP code needs an ICMP type") }
            traffic = .icmp(type: type < 0 ? nil : type, code: code < 0 ? nil : code)
        case "-1", "all":
            traffic = .all
        default:
            throw EC2Error.invalid("\(field).IpProtocol", "'\(name.prefix(16))': vnet's rules are tcp, udp, icmp or -1 (all)")
        }
        if let problem = traffic.problem { throw EC2Error.invalid(field, problem) }
        return traffic
    }

    // MARK: addresses

    func allocateAddress() throws(EC2Error) -> Body {
        try only(["Domain", "Address"])
        if let domain = parameters["Domain"], !["standard", "vpc"].contains(domain) {
            throw EC2Error.invalid("Domain", "'\(domain.prefix(16))' is neither standard nor vpc")
        }
        var ref = Vnet_V1_AddressRef()
        if let text = parameters["Address"] {
            guard let address = IPv4Address(text) else { throw EC2Error.invalid("Address", "'\(text.prefix(32))' is not an IPv4 address") }
            ref.address = address.value
        }
        try dryRunCheck()
        ref.user = owner
        let reply = try call(.allocateAddress(ref), [.addressNotFound: "InvalidAddress.NotFound"])
        guard let allocated = reply.addresses.first else { throw EC2Error.internalError("the coordinator allocated no address") }
        let address = IPv4Address(allocated.address)
        return { xml in
            xml.element("publicIp", address.description)
            xml.element("domain", "standard")
            xml.element("allocationId", EC2Identifiers.allocationID(address))
        }
    }

    /// The address of PublicIp or of AllocationId (exactly one), and the error code for "not yours / not there".
    func namedAddress(idParameter: String, idPrefix: String, notFound: String) throws(EC2Error) -> (IPv4Address, String) {
        switch (parameters["PublicIp"], parameters[idParameter]) {
        case (let text?, nil):
            guard let address = IPv4Address(text) else { throw EC2Error.invalid("PublicIp", "'\(text.prefix(32))' is not an IPv4 address") }
            return (address, "InvalidAddress.NotFound")
        case (nil, let id?):
            guard let address = EC2Identifiers.address(fromID: id, prefix: idPrefix) else {
                throw EC2Error("\(notFound.replacingOccurrences(of: ".NotFound", with: ".Malformed"))", "Invalid id: \"\(id.prefix(64))\" (expecting \"\(idPrefix)-...\")")
            }
            return (address, notFound)
        case (.some, .some):
            throw EC2Error.invalidCombination("PublicIp and \(idParameter) cannot both be given")
        case (nil, nil):
            throw EC2Error.missing("PublicIp or \(idParameter)")
        }
    }

    func releaseAddress() throws(EC2Error) -> Body {
        try only(["PublicIp", "AllocationId", "NetworkBorderGroup"])
        let (address, notFound) = try namedAddress(idParameter: "AllocationId", idPrefix: "eipalloc", notFound: "InvalidAllocationID.NotFound")
        try dryRunCheck()
        var ref = Vnet_V1_AddressRef()
        ref.address = address.value; ref.user = addressUser
        _ = try call(.releaseAddress(ref), [.addressNotFound: notFound])
        return { $0.element("return", true) }
    }

    func associateAddress() throws(EC2Error) -> Body {
        try only(["PublicIp", "AllocationId", "InstanceId", "AllowReassociation", "NetworkInterfaceId", "PrivateIpAddress"])
        if parameters["NetworkInterfaceId"] != nil || parameters["PrivateIpAddress"] != nil {
            throw EC2Error("UnsupportedOperation", "vnet associates a public address with an instance (InstanceId), not with an interface or a secondary address")
        }
        let instance = try parameters.required("InstanceId")
        guard InstanceID(instance) != nil else {
            throw EC2Error("InvalidInstanceID.Malformed", "Invalid id: \"\(instance.prefix(64))\" (expecting \"i-\" and 8 hex digits)")
        }
        let (address, notFound) = try namedAddress(idParameter: "AllocationId", idPrefix: "eipalloc", notFound: "InvalidAllocationID.NotFound")
        try dryRunCheck()
        var association = Vnet_V1_Association()
        association.address = address.value; association.instanceID = instance; association.user = addressUser
        _ = try call(.associateAddress(association), [.addressNotFound: notFound, .addressInUse: "Resource.AlreadyAssociated"])
        return { xml in
            xml.element("return", true)
            xml.element("associationId", EC2Identifiers.associationID(address))
        }
    }

    func disassociateAddress() throws(EC2Error) -> Body {
        try only(["PublicIp", "AssociationId"])
        let (address, notFound) = try namedAddress(idParameter: "AssociationId", idPrefix: "eipassoc", notFound: "InvalidAssociationID.NotFound")
        try dryRunCheck()
        var ref = Vnet_V1_AddressRef()
        ref.address = address.value; ref.user = addressUser
        _ = try call(.disassociateAddress(ref), [.addressNotFound: notFound])
        return { $0.element("return", true) }
    }

    func describeAddresses() throws(EC2Error) -> Body {
        try only([], prefixes: ["PublicIp", "AllocationId", "Filter"])
        let publicIPs = try parameters.list("PublicIp"), allocationIDs = try parameters.list("AllocationId")
        let filters = try Filters(parameters, known: ["public-ip", "allocation-id", "association-id", "instance-id", "domain"])
        var wanted: [IPv4Address: (String, String)] = [:]
        for text in publicIPs {
            guard let address = IPv4Address(text) else { throw EC2Error.invalid("PublicIp", "'\(text.prefix(32))' is not an IPv4 address") }
            wanted[address] = ("InvalidAddress.NotFound", "Address '\(address)' not found.")
        }
        for id in allocationIDs {
            guard let address = EC2Identifiers.address(fromID: id, prefix: "eipalloc") else {
                throw EC2Error("InvalidAllocationID.Malformed", "Invalid id: \"\(id.prefix(64))\" (expecting \"eipalloc-...\")")
            }
            wanted[address] = ("InvalidAllocationID.NotFound", "The allocation ID '\(id)' does not exist")
        }
        try dryRunCheck()
        var shown = try call(.describeAddresses(Vnet_V1_DescribeAddresses())).addresses.filter { caller.admin || $0.owner == caller.user }
        if !wanted.isEmpty {
            for (address, refusal) in wanted.sorted(by: { $0.key < $1.key }) where !shown.contains(where: { $0.address == address.value }) {
                throw EC2Error(refusal.0, refusal.1)
            }
            shown = shown.filter { wanted[IPv4Address($0.address)] != nil }
        }
        shown = shown.filter { info in
            let address = IPv4Address(info.address)
            return filters.matches(["public-ip": address.description, "allocation-id": EC2Identifiers.allocationID(address),
                                    "association-id": info.instanceID.isEmpty ? nil : EC2Identifiers.associationID(address),
                                    "instance-id": info.instanceID.isEmpty ? nil : info.instanceID, "domain": "standard"])
        }
        return { xml in
            xml.items("addressesSet", shown) { xml, info in
                let address = IPv4Address(info.address)
                xml.element("publicIp", address.description)
                xml.element("allocationId", EC2Identifiers.allocationID(address))
                xml.element("domain", "standard")
                if !info.instanceID.isEmpty {
                    xml.element("instanceId", info.instanceID)
                    xml.element("associationId", EC2Identifiers.associationID(address))
                }
            }
        }
    }

    // MARK: instances (the network view)

    func describeInstances() throws(EC2Error) -> Body {
        try only(["MaxResults", "NextToken"], prefixes: ["InstanceId", "Filter"])
        let ids = try parameters.list("InstanceId")
        for id in ids where InstanceID(id) == nil {
            throw EC2Error("InvalidInstanceID.Malformed", "Invalid id: \"\(id.prefix(64))\" (expecting \"i-\" and 8 hex digits)")
        }
        let filters = try Filters(parameters, known: ["instance-id", "private-ip-address", "ip-address", "group-name", "group-id", "instance-state-name"])
        try dryRunCheck()
        var shown = try call(.describeInstances(Vnet_V1_DescribeInstances())).instances.filter { instance in
            caller.admin || GroupID(instance.group)?.user == caller.user
        }
        for id in ids where !shown.contains(where: { $0.instanceID == id }) {
            throw EC2Error("InvalidInstanceID.NotFound", "The instance ID '\(id)' does not exist")
        }
        if !ids.isEmpty { shown = shown.filter { ids.contains($0.instanceID) } }
        shown = shown.filter { instance in
            let group = GroupID(instance.group)
            return filters.matches(["instance-id": instance.instanceID,
                                    "private-ip-address": instance.address == 0 ? nil : IPv4Address(instance.address).description,
                                    "ip-address": instance.publicIp == 0 ? nil : IPv4Address(instance.publicIp).description,
                                    "group-name": group?.name, "group-id": group.map(EC2Identifiers.groupID), "instance-state-name": "running"])
        }
        return { xml in
            xml.items("reservationSet", shown) { xml, instance in
                let group = GroupID(instance.group)
                xml.element("reservationId", "r-" + instance.instanceID.dropFirst(2))
                xml.element("ownerId", group?.user ?? "admin")
                xml.items("groupSet", group.map { [$0] } ?? []) { xml, group in
                    xml.element("groupId", EC2Identifiers.groupID(group))
                    xml.element("groupName", group.name)
                }
                xml.items("instancesSet", [instance]) { xml, instance in
                    xml.element("instanceId", instance.instanceID)
                    xml.start("instanceState")
                    xml.element("code", 16)
                    xml.element("name", "running")
                    xml.end()
                    if instance.address != 0 { xml.element("privateIpAddress", IPv4Address(instance.address).description) }
                    if instance.publicIp != 0 { xml.element("ipAddress", IPv4Address(instance.publicIp).description) }
                    xml.items("groupSet", group.map { [$0] } ?? []) { xml, group in
                        xml.element("groupId", EC2Identifiers.groupID(group))
                        xml.element("groupName", group.name)
                    }
                    xml.start("placement"); xml.element("availabilityZone", instance.node); xml.end()
                }
            }
        }
    }
}

/// One request's cache of the coordinator's groups (a class: the context is passed by value).
final class GroupListing {
    var groups: [Vnet_V1_GroupInfo]?
}

/// EC2's `Filter.N.Name` / `Filter.N.Value.M`: an object passes when, for every filter, one of its values
/// matches (`*` and `?` as wildcards). An unknown filter name is refused, never ignored.
struct Filters {
    var filters: [(name: String, values: [String])] = []

    init(_ parameters: QueryParameters, known: Set<String>) throws(EC2Error) {
        for (index, filter) in try parameters.members("Filter").enumerated() {
            try filter.checkOnly(["Name"], prefixes: ["Value"])
            let name = try filter.required("Name")
            guard known.contains(name) else {
                throw EC2Error("InvalidParameterValue", "The filter '\(name.prefix(64))' is invalid (vnet knows \(known.sorted().joined(separator: ", ")))")
            }
            let values = try filter.list("Value")
            guard !values.isEmpty else { throw EC2Error.missing("Filter.\(index + 1).Value.1") }
            filters.append((name, values))
        }
    }

    func matches(_ fields: [String: String?]) -> Bool {
        filters.allSatisfy { filter in
            guard let value = fields[filter.name] ?? nil else { return false }
            return filter.values.contains { Self.glob($0, value) }
        }
    }

    static func glob(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern), t = Array(text)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] == "?" || p[pi] == t[ti] { pi += 1; ti += 1 } else if pi < p.count, p[pi] == "*" {
                star = pi; mark = ti; pi += 1
            } else if star >= 0 { pi = star + 1; mark += 1; ti = mark } else { return false }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}
