import Testing
@testable import VNetCore

@Suite("scenario files")
struct ScenarioTests {
    let config = validConfig(managedFrontend)

    func load(_ json: String) throws(ClusterError) -> ClusterState {
        try ScenarioLoader.load(try Scenario.decode(Array(json.utf8)), config: config)
    }

    func expectError(_ json: String, field: String, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try load(json)
            Issue.record("accepted: \(json)", sourceLocation: sourceLocation)
        } catch {
            #expect(error.field == field, "\(error)", sourceLocation: sourceLocation)
            #expect(error.message.contains(fragment), "\(error)", sourceLocation: sourceLocation)
        }
    }

    let node = #"{"name":"n1"}"#
    let group = #"{"user":"u","name":"g"}"#

    @Test func errorsNameTheField() {
        expectError("{}", field: "nodes", "required field is missing")
        expectInvalidJSON()
        expectError(#"{"nodes":[{"name":"n1","bridg":"br0"}]}"#, field: "nodes[0].bridg", "unknown field")
        expectError(#"{"nodes":[{"name":7}]}"#, field: "nodes[0].name", "expected a string")
        expectError(#"{"nodes":[{"name":"bad name"}]}"#, field: "nodes[0].name", "contains a space")
        expectError(#"{"nodes":[\#(node)],"instances":[{"id":"i-12","node":"n1"}]}"#, field: "instances[0].id", "not an instance id")
        expectError(#"{"nodes":[\#(node)],"instances":[{"id":"i-00000001","node":"n1","group":"u/none"}]}"#,
                    field: "instances[0].group", "no group u/none")
        expectError(#"{"nodes":[\#(node)],"instances":[{"id":"i-00000001","node":"n9","group":"u/g"}],"groups":[\#(group)]}"#,
                    field: "instances[0].node", "no node 'n9'")
        expectError(#"{"nodes":[\#(node)],"groups":[{"user":"u","name":"g","rules":[{"protocol":"sctp","source":"0.0.0.0/0"}]}]}"#,
                    field: "groups[0].rules[0].protocol", "not tcp, udp, icmp or all")
        expectError(#"{"nodes":[\#(node)],"groups":[{"user":"u","name":"g","rules":[{"protocol":"tcp","ports":"22","source":"10.0.0.1/8"}]}]}"#,
                    field: "groups[0].rules[0].source", "no host bits")
        expectError(#"{"nodes":[\#(node)],"groups":[{"user":"u","name":"g","rules":[{"protocol":"tcp","ports":"0-22","source":"0.0.0.0/0"}]}]}"#,
                    field: "groups[0].rules[0]", "1-65535")
        expectError(#"{"nodes":[\#(node)],"groups":[{"user":"u","name":"g","rules":[{"protocol":"tcp","ports":"22"}]}]}"#,
                    field: "groups[0].rules[0].source", "needs a source")
        expectError(#"{"nodes":[\#(node)],"groups":[{"user":"u","name":"g","rules":[{"protocol":"udp","ports":"53","sourceGroup":"ghost"}]}]}"#,
                    field: "groups[0].rules[0]", "source group u/ghost does not exist")
        expectError(#"{"nodes":[\#(node)],"groups":[\#(group)],"instances":[{"id":"i-00000001","node":"n1","group":"u/g"}],"publicIPs":[{"address":"192.0.2.1","instance":"i-00000001"}]}"#,
                    field: "publicIPs[0]", "not in VNET_PUBLICIPS")
        expectError(#"{"nodes":[\#(node)],"publicIPs":[{"address":"auto","instance":"i-00000009"}]}"#,
                    field: "publicIPs[0].instance", "no instance i-00000009")
        expectError(#"{"nodes":[\#(node),\#(node)]}"#, field: "nodes[1].name", "already registered")
    }

    func expectInvalidJSON() {
        do { _ = try load("{") ; Issue.record("accepted broken JSON") } catch {
            #expect(error.field == nil && error.message.contains("not valid JSON"), "\(error)")
        }
    }

    @Test func rulesMayNameGroupsDefinedLater() throws {
        let state = try load(#"{"nodes":[\#(node)],"groups":[{"user":"u","name":"a","rules":[{"protocol":"icmp","sourceGroup":"b"}]},{"user":"u","name":"b"}]}"#)
        #expect(state.groups[GroupID(user: "u", name: "a")]?.rules.first?.source == .group(GroupID(user: "u", name: "b")))
    }

    @Test func instancesNeedAGroupInManagedModes() {
        expectError(#"{"nodes":[\#(node)],"instances":[{"id":"i-00000001","node":"n1"}]}"#, field: "instances[0].group", "name one")
    }
}
