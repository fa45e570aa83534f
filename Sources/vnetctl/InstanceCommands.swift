import ArgumentParser
import VNetCore
import VNetProto

/// `vnetctl run-instance --id i-XXXXXXXX --node NODE [--group G] [--user U] [--public-ip auto|ADDR] [--vif NAME]`
struct RunInstanceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run-instance", abstract: "Give an instance its network: IP, MAC, VLAN, bridge.")
    @Option var id: String
    @Option var node: String
    @Option(help: "Security group (managed modes; default: the user's 'default' group, made on first use).") var group: String?
    @Option(help: "The group's owner (default admin).") var user: String?
    @Option(name: .customLong("public-ip"), help: "auto, or an address of VNET_PUBLICIPS.") var publicIP: String?
    @Option(help: "A vif the hypervisor made, to attach instead of a tap the agent makes.") var vif: String?
    @OptionGroup var wait: WaitOptions
    @OptionGroup var bus: BusOptions

    func validate() throws {
        guard InstanceID(id) != nil else { throw ValidationError("--id '\(id)' is not an instance id (i- followed by 8 hex digits)") }
    }

    func run() throws {
        var request = Vnet_V1_RunInstance()
        request.instanceID = id; request.node = node; request.group = group ?? ""; request.user = user ?? ""
        request.publicIp = publicIP ?? ""; request.vif = vif ?? ""
        try bus.change(.runInstance(request), wait: wait) { reply in
            table([InstanceView.header] + reply.instances.map { InstanceView($0).row }) + "revision \(reply.revision)\n"
        }
    }
}

/// `vnetctl terminate-instance --id i-XXXXXXXX`
struct TerminateInstanceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "terminate-instance", abstract: "Release an instance's network.")
    @Option var id: String
    @OptionGroup var wait: WaitOptions
    @OptionGroup var bus: BusOptions

    func run() throws {
        var ref = Vnet_V1_InstanceRef()
        ref.instanceID = id
        try bus.change(.terminateInstance(ref), wait: wait) { "terminated \(id); revision \($0.revision)\n" }
    }
}

/// `vnetctl describe-instances`
struct DescribeInstancesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "describe-instances", abstract: "Every instance's network.")
    @OptionGroup var bus: BusOptions

    func run() throws {
        let instances = try bus.call(.describeInstances(Vnet_V1_DescribeInstances())).instances.map(InstanceView.init)
        if bus.json { try Output.json(instances); return }
        Output.text(table([InstanceView.header] + instances.map(\.row)))
    }
}
