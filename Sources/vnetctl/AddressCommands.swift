import ArgumentParser
import VNetCore
import VNetProto

func parseAddress(_ text: String, _ flag: String) throws -> UInt32 {
    guard let address = IPv4Address(text) else { throw CommandFailure.usage("\(flag) '\(text)' is not an IPv4 address") }
    return address.value
}

struct AllocateAddressCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "allocate-address", abstract: "Take a public IP from VNET_PUBLICIPS.")
    @Option(help: "A particular address (default: the first free one).") var address: String?
    @OptionGroup var bus: BusOptions

    func run() throws {
        var ref = Vnet_V1_AddressRef()
        if let address { ref.address = try parseAddress(address, "--address") }
        try bus.change(.allocateAddress(ref), wait: nil) { reply in
            "allocated \(reply.addresses.first.map { IPv4Address($0.address).description } ?? "?"); revision \(reply.revision)\n"
        }
    }
}

struct AssociateAddressCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "associate-address", abstract: "Point a public IP at an instance.")
    @Option var address: String
    @Option(name: .customLong("instance")) var instance: String
    @OptionGroup var wait: WaitOptions
    @OptionGroup var bus: BusOptions

    func run() throws {
        var association = Vnet_V1_Association()
        association.address = try parseAddress(address, "--address")
        association.instanceID = instance
        try bus.change(.associateAddress(association), wait: wait) { "\(address) -> \(instance); revision \($0.revision)\n" }
    }
}

struct DisassociateAddressCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "disassociate-address", abstract: "Point a public IP at nothing.")
    @Option var address: String
    @OptionGroup var wait: WaitOptions
    @OptionGroup var bus: BusOptions

    func run() throws {
        var ref = Vnet_V1_AddressRef()
        ref.address = try parseAddress(address, "--address")
        try bus.change(.disassociateAddress(ref), wait: wait) { "disassociated \(address); revision \($0.revision)\n" }
    }
}

struct ReleaseAddressCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "release-address", abstract: "Give a public IP back.")
    @Option var address: String
    @OptionGroup var bus: BusOptions

    func run() throws {
        var ref = Vnet_V1_AddressRef()
        ref.address = try parseAddress(address, "--address")
        try bus.change(.releaseAddress(ref), wait: nil) { "released \(address); revision \($0.revision)\n" }
    }
}

struct DescribeAddressesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "describe-addresses", abstract: "Allocated public IPs.")
    @OptionGroup var bus: BusOptions

    func run() throws {
        let addresses = try bus.call(.describeAddresses(Vnet_V1_DescribeAddresses())).addresses.map(AddressView.init)
        if bus.json { try Output.json(addresses); return }
        Output.text(table([["ADDRESS", "INSTANCE", "OWNER"]] + addresses.map { [$0.address, $0.instance ?? "-", $0.owner ?? "-"] }))
    }
}
