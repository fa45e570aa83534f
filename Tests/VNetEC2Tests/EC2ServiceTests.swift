import Testing
import VNetCoordinator
import VNetCore
import VNetProto
@testable import VNetEC2

/// The coordinator's own request handling (ControlHandler over an Allocator), in process: the service's
/// mapping is tested against the real refusals, not against imitations of them.
final class InProcessCoordinator: ControlChannel {
    var allocator: Allocator
    let handler: ControlHandler
    var calls = 0

    init(mode: String = "MANAGED-NOVLAN") throws {
        let text = """
        VNET_MODE="\(mode)"
        VNET_INTERFACE="eth0"
        VNET_DHCPDAEMON="/usr/sbin/dhcpd"
        VNET_SUBNET="10.20.0.0"
        VNET_NETMASK="255.255.0.0"
        VNET_DNS="192.0.2.53"
        VNET_ADDRSPERNET="64"
        VNET_PUBLICIPS="203.0.113.10-203.0.113.11"
        \(mode == "STATIC" ? "VNET_MACMAP=\"D0:0D:00:00:00:01=10.20.0.5\"\nVNET_ROUTER=\"10.20.0.1\"\nVNET_BROADCAST=\"10.20.255.255\"" : "")
        """
        let check = ConfigValidator.validate(text: text, role: .frontend)
        let config = try #require(check.config, "\(check.diagnostics)")
        handler = ControlHandler(config: config)
        allocator = try Allocator(config: config, state: ClusterState(frontend: "fe"))
        try allocator.addNode(.init(name: "n1", interface: "eth0", bridge: "br0"))
    }

    func call(_ op: Vnet_V1_ControlRequest.OneOf_Op) throws(EC2Error) -> Vnet_V1_ControlReply {
        calls += 1
        var request = Vnet_V1_ControlRequest()
        request.op = op
        return handler.handle(request, &allocator, view: .init()).0
    }
}

@Suite struct EC2ServiceTests {
    static let alice = AccessKeys.Key(id: "AKIAVNETALICE0000001", secret: "alicesecretalicesecret0000", user: "alice", admin: false)
    static let bob = AccessKeys.Key(id: "AKIAVNETBOB000000001", secret: "bobsecretbobsecretbob00000", user: "bob", admin: false)
    static let ops = AccessKeys.Key(id: "AKIAVNETOPS000000001", secret: "opssecretopssecretops00000", user: "ops", admin: true)

    @discardableResult
    func ec2(_ coordinator: InProcessCoordinator, _ parameters: [String: String], as caller: AccessKeys.Key = alice) -> EC2Response {
        EC2Service().handle(QueryParameters(parameters), caller: caller, requestID: "r-1", channel: coordinator)
    }

    func code(_ response: EC2Response) -> String { response.errorCode ?? "ok" }

    @Test func groupsRulesAndTheirErrorCodes() throws {
        let c = try InProcessCoordinator()
        let created = ec2(c, ["Action": "CreateSecurityGroup", "GroupName": "web", "GroupDescription": "web servers"])
        #expect(created.status == 200 && created.body.contains("<groupId>\(EC2Identifiers.groupID(GroupID(user: "alice", name: "web")))</groupId>"), "\(created.body)")
        #expect(created.body.contains("xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\""))
        #expect(code(ec2(c, ["Action": "CreateSecurityGroup", "GroupName": "web", "GroupDescription": "again"])) == "InvalidGroup.Duplicate")
        #expect(code(ec2(c, ["Action": "CreateSecurityGroup", "GroupName": "db"])) == "MissingParameter")
        ec2(c, ["Action": "CreateSecurityGroup", "GroupName": "db", "GroupDescription": "databases"])
        let webID = EC2Identifiers.groupID(GroupID(user: "alice", name: "web"))
        let ssh = ["Action": "AuthorizeSecurityGroupIngress", "GroupName": "web", "IpPermissions.1.IpProtocol": "tcp",
                   "IpPermissions.1.FromPort": "22", "IpPermissions.1.ToPort": "22", "IpPermissions.1.IpRanges.1.CidrIp": "198.51.100.0/24"]
        let callsBefore = c.calls
        #expect(code(ec2(c, ssh)) == "ok")
        #expect(c.calls == callsBefore + 1, "by GroupName with a CIDR source: one request, no group listing")
        #expect(code(ec2(c, ssh)) == "InvalidPermission.Duplicate")
        // All of a request or none: a new rule beside a duplicate is not added.
        var both = ssh
        both["IpPermissions.1.IpRanges.2.CidrIp"] = "192.0.2.0/24"
        #expect(code(ec2(c, both)) == "InvalidPermission.Duplicate")
        #expect(c.allocator.state.groups[GroupID(user: "alice", name: "web")]!.rules.count == 1)
        // icmp from another group, by GroupId.
        #expect(code(ec2(c, ["Action": "AuthorizeSecurityGroupIngress", "GroupName": "db", "IpPermissions.1.IpProtocol": "icmp",
                             "IpPermissions.1.FromPort": "-1", "IpPermissions.1.ToPort": "-1", "IpPermissions.1.Groups.1.GroupId": webID])) == "ok")
        #expect(c.allocator.state.groups[GroupID(user: "alice", name: "db")]!.rules == [SecurityRule(.icmp(type: nil, code: nil), from: .group(GroupID(user: "alice", name: "web")))])
        // -1: every protocol.
        #expect(code(ec2(c, ["Action": "AuthorizeSecurityGroupIngress", "GroupName": "db", "IpPermissions.1.IpProtocol": "-1",
                             "IpPermissions.1.IpRanges.1.CidrIp": "10.1.0.0/16"])) == "ok")
        #expect(c.allocator.state.groups[GroupID(user: "alice", name: "db")]!.rules.last == SecurityRule(.all, from: .cidr(IPv4Network("10.1.0.0/16")!)))
        for (parameters, expected) in [
            (["IpPermissions.1.IpProtocol": "tcp", "IpPermissions.1.FromPort": "22", "IpPermissions.1.ToPort": "22", "IpPermissions.1.IpRanges.1.CidrIp": "10.0.0.300/8"], "InvalidParameterValue"),
            (["IpPermissions.1.IpProtocol": "gre", "IpPermissions.1.IpRanges.1.CidrIp": "10.0.0.0/8"], "InvalidParameterValue"),
            (["IpPermissions.1.IpProtocol": "tcp", "IpPermissions.1.FromPort": "30", "IpPermissions.1.ToPort": "20", "IpPermissions.1.IpRanges.1.CidrIp": "10.0.0.0/8"], "InvalidParameterValue"),
            (["IpPermissions.1.IpProtocol": "tcp", "IpPermissions.1.FromPort": "22", "IpPermissions.1.ToPort": "22"], "MissingParameter"),
            (["IpPermissions.1.IpProtocol": "tcp", "IpPermissions.1.FromPort": "22", "IpPermissions.1.ToPort": "22", "IpPermissions.1.Groups.1.GroupName": "nosuch"], "InvalidGroup.NotFound"),
            (["IpPermissions.1.IpProtocol": "tcp", "IpPermissions.1.FromPort": "22", "IpPermissions.1.ToPort": "22", "IpPermissions.1.Ipv6Ranges.1.CidrIpv6": "::/0"], "UnsupportedOperation"),
            (["IpPermissions.1.IpProtcol": "tcp"], "UnknownParameter"),
        ] {
            #expect(code(ec2(c, ["Action": "AuthorizeSecurityGroupIngress", "GroupName": "web"].merging(parameters) { $1 })) == expected, "\(parameters)")
        }
        var revoke = ssh
        revoke["Action"] = "RevokeSecurityGroupIngress"
        #expect(code(ec2(c, revoke)) == "ok")
        #expect(code(ec2(c, revoke)) == "InvalidPermission.NotFound")
        #expect(code(ec2(c, ["Action": "DeleteSecurityGroup", "GroupName": "nosuch"])) == "InvalidGroup.NotFound")
        #expect(code(ec2(c, ["Action": "DeleteSecurityGroup", "GroupId": "sg-0123456789abcdef0"])) == "InvalidGroup.NotFound")
        #expect(code(ec2(c, ["Action": "DeleteSecurityGroup", "GroupId": "web"])) == "InvalidGroupId.Malformed")
        // web is db's rule's source: in use.
        #expect(code(ec2(c, ["Action": "DeleteSecurityGroup", "GroupId": webID])) == "DependencyViolation")
        #expect(code(ec2(c, ["Action": "DescribeSecurityGroups", "GroupName.1": "nosuch"])) == "InvalidGroup.NotFound")
        let described = ec2(c, ["Action": "DescribeSecurityGroups", "GroupName.1": "db"])
        #expect(described.body.contains("<groupName>db</groupName>") && !described.body.contains("<groupName>web</groupName><groupDescription>"))
        #expect(described.body.contains("<ipProtocol>icmp</ipProtocol><fromPort>-1</fromPort><toPort>-1</toPort><groups><item><userId>alice</userId><groupId>\(webID)</groupId><groupName>web</groupName></item></groups>"), "\(described.body)")
        #expect(described.body.contains("<ipProtocol>-1</ipProtocol><groups></groups><ipRanges><item><cidrIp>10.1.0.0/16</cidrIp></item></ipRanges>"))
        let filtered = ec2(c, ["Action": "DescribeSecurityGroups", "Filter.1.Name": "group-name", "Filter.1.Value.1": "w*"])
        #expect(filtered.body.contains("<groupName>web</groupName>") && !filtered.body.contains("<groupName>db</groupName>"))
        #expect(code(ec2(c, ["Action": "DescribeSecurityGroups", "Filter.1.Name": "vpc-id", "Filter.1.Value.1": "x"])) == "InvalidParameterValue")
        #expect(code(ec2(c, ["Action": "RunInstances"])) == "InvalidAction")
        #expect(code(ec2(c, ["Action": "DescribeSecurityGroups", "Version": "latest"])) == "NoSuchVersion")
        let dry = ec2(c, ["Action": "CreateSecurityGroup", "GroupName": "x", "GroupDescription": "x", "DryRun": "true"])
        #expect(dry.errorCode == "DryRunOperation" && dry.status == 412 && c.allocator.state.groups[GroupID(user: "alice", name: "x")] == nil)
    }

    @Test func usersSeeOnlyTheirOwnAndAdminsSeeAll() throws {
        let c = try InProcessCoordinator()
        ec2(c, ["Action": "CreateSecurityGroup", "GroupName": "web", "GroupDescription": "for alice"])
        ec2(c, ["Action": "CreateSecurityGroup", "GroupName": "web", "GroupDescription": "for bob"], as: Self.bob)
        let aliceView = ec2(c, ["Action": "DescribeSecurityGroups"]).body
        #expect(aliceView.contains("for alice") && !aliceView.contains("for bob"))
        let bobsID = EC2Identifiers.groupID(GroupID(user: "bob", name: "web"))
        #expect(code(ec2(c, ["Action": "DeleteSecurityGroup", "GroupId": bobsID])) == "InvalidGroup.NotFound", "alice cannot name bob's group")
        let adminView = ec2(c, ["Action": "DescribeSecurityGroups"], as: Self.ops).body
        #expect(adminView.contains("for alice") && adminView.contains("for bob") && adminView.contains("<ownerId>bob</ownerId>"))
        #expect(code(ec2(c, ["Action": "DeleteSecurityGroup", "GroupId": bobsID], as: Self.ops)) == "ok")

        let allocated = ec2(c, ["Action": "AllocateAddress"])
        #expect(allocated.body.contains("<publicIp>203.0.113.10</publicIp>") && allocated.body.contains("<allocationId>eipalloc-cb00710a</allocationId>"), "\(allocated.body)")
        ec2(c, ["Action": "AllocateAddress"], as: Self.bob)
        #expect(code(ec2(c, ["Action": "AllocateAddress"], as: Self.bob)) == "AddressLimitExceeded")
        #expect(!ec2(c, ["Action": "DescribeAddresses"]).body.contains("203.0.113.11"))
        #expect(code(ec2(c, ["Action": "ReleaseAddress", "PublicIp": "203.0.113.11"])) == "InvalidAddress.NotFound", "bob's address is not alice's")
        #expect(code(ec2(c, ["Action": "ReleaseAddress", "AllocationId": "eipalloc-cb00710b"])) == "InvalidAllocationID.NotFound")
        #expect(code(ec2(c, ["Action": "DescribeAddresses", "PublicIp.1": "203.0.113.11"])) == "InvalidAddress.NotFound")
        #expect(ec2(c, ["Action": "DescribeAddresses"], as: Self.ops).body.contains("203.0.113.11"))

        // Instances: alice's in alice/web; bob's address cannot go to it, nor alice's to bob's.
        _ = try c.allocator.runInstance(InstanceID("i-0000a001")!, on: "n1", group: GroupID(user: "alice", name: "web"))
        _ = try c.allocator.createGroup(GroupID(user: "bob", name: "db"))
        _ = try c.allocator.runInstance(InstanceID("i-0000b001")!, on: "n1", group: GroupID(user: "bob", name: "db"))
        #expect(code(ec2(c, ["Action": "AssociateAddress", "PublicIp": "203.0.113.10", "InstanceId": "i-0000b001"])) == "InvalidInstanceID.NotFound")
        #expect(code(ec2(c, ["Action": "AssociateAddress", "PublicIp": "203.0.113.10", "InstanceId": "i-0000dead"])) == "InvalidInstanceID.NotFound")
        #expect(code(ec2(c, ["Action": "AssociateAddress", "PublicIp": "203.0.113.10", "InstanceId": "web"])) == "InvalidInstanceID.Malformed")
        let associated = ec2(c, ["Action": "AssociateAddress", "AllocationId": "eipalloc-cb00710a", "InstanceId": "i-0000a001"])
        #expect(associated.body.contains("<associationId>eipassoc-cb00710a</associationId>"))
        #expect(code(ec2(c, ["Action": "AssociateAddress", "PublicIp": "203.0.113.11", "InstanceId": "i-0000b001"], as: Self.bob)) == "ok")
        #expect(code(ec2(c, ["Action": "ReleaseAddress", "PublicIp": "203.0.113.10"])) == "InvalidIPAddress.InUse")
        #expect(code(ec2(c, ["Action": "DeleteSecurityGroup", "GroupName": "web"])) == "DependencyViolation")
        let instances = ec2(c, ["Action": "DescribeInstances"]).body
        #expect(instances.contains("<instanceId>i-0000a001</instanceId>") && instances.contains("<ipAddress>203.0.113.10</ipAddress>") && !instances.contains("i-0000b001"))
        #expect(code(ec2(c, ["Action": "DisassociateAddress", "AssociationId": "eipassoc-cb00710a"])) == "ok")
        #expect(code(ec2(c, ["Action": "DisassociateAddress", "PublicIp": "203.0.113.10"])) == "InvalidAddress.NotFound")
        #expect(code(ec2(c, ["Action": "ReleaseAddress", "PublicIp": "203.0.113.10"])) == "ok")
        #expect(c.allocator.state.publicIPs[IPv4Address("203.0.113.10")!] == nil)
    }

    @Test func systemAndStaticRefuseGroupsAndAddresses() throws {
        for mode in ["SYSTEM", "STATIC"] {
            let c = try InProcessCoordinator(mode: mode)
            let refused = ec2(c, ["Action": "CreateSecurityGroup", "GroupName": "web", "GroupDescription": "x"])
            #expect(refused.errorCode == "UnsupportedOperation" && refused.body.contains(mode), "\(refused.body)")
            #expect(code(ec2(c, ["Action": "AllocateAddress"])) == "UnsupportedOperation")
        }
    }
}
