import Testing
@testable import VNetCore

@Suite("eucalyptus.conf validation")
struct ConfigValidatorTests {
    /// The one error with `key`, asserting there is exactly one error at all.
    func onlyError(_ pairs: [(String, String)], role: HostRole = .frontend,
                   sourceLocation: SourceLocation = #_sourceLocation) -> Diagnostic? {
        let check = ConfigValidator.validate(text: conf(pairs), role: role)
        #expect(check.diagnostics.errors.count == 1, "\(check.diagnostics.errors)", sourceLocation: sourceLocation)
        #expect(!check.isValid, sourceLocation: sourceLocation)
        return check.diagnostics.errors.first
    }

    func expectError(_ pairs: [(String, String)], key: String, _ fragment: String, role: HostRole = .frontend,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        let error = onlyError(pairs, role: role, sourceLocation: sourceLocation)
        #expect(error?.key == key, sourceLocation: sourceLocation)
        #expect(error?.line == line(of: key, in: pairs), "line", sourceLocation: sourceLocation)
        #expect(error?.message.contains(fragment) == true, "\(error?.message ?? "")", sourceLocation: sourceLocation)
    }

    @Test func examplesFromTheSeedDocumentAreValid() {
        #expect(ConfigValidator.validate(text: conf(managedFrontend), role: .frontend).isValid)
        #expect(ConfigValidator.validate(text: conf(staticFrontend), role: .frontend).isValid)
    }

    @Test func seedCapacityExample() throws {
        // 192.168.0.0/16 with VNET_ADDRSPERNET 64: 1024 networks of 61 instances.
        let pairs = with(with(managedFrontend, "VNET_SUBNET", "192.168.0.0"), "VNET_ADDRSPERNET", "64")
        let report = ConfigCheckReport(ConfigValidator.validate(text: conf(pairs), role: .frontend))
        #expect(report.valid)
        // 1024 networks of 64 (VIDs 2-1025); groups get those of the default VID range 10-4094: 1016.
        #expect(ConfigValidator.validate(text: conf(pairs), role: .frontend).config?.layout?.networkCount == 1024)
        #expect(report.capacity.networks == 1016)
        #expect(report.capacity.instancesPerNetwork == 61)
        #expect(report.capacity.addressesPerNetwork == 64)
        #expect(report.capacity.firstVlan == 10)
        #expect(report.capacity.lastVlan == 1025)
        #expect(report.capacity.vlanRange == "10-4094")
        #expect(report.capacity.publicIPs == 10)
        // And 256 per network gives 253 instances.
        let wide = ConfigCheckReport(ConfigValidator.validate(text: conf(with(managedFrontend, "VNET_ADDRSPERNET", "256")), role: .frontend))
        #expect(wide.capacity.instancesPerNetwork == 253)
    }

    @Test func networksAreCappedByVLANTags() {
        let pairs = with(with(with(managedFrontend, "VNET_SUBNET", "10.0.0.0"), "VNET_NETMASK", "255.0.0.0"), "VNET_ADDRSPERNET", "128")
        let check = ConfigValidator.validate(text: conf(pairs), role: .frontend)
        #expect(check.isValid)
        #expect(check.config?.layout?.networkCount == 4093)
        #expect(check.config?.layout?.lastVLAN == 4094)
        #expect(check.diagnostics.warnings.contains { $0.key == "VNET_ADDRSPERNET" && $0.message.contains("4093") })
    }

    @Test func theExpectedMTUIsAWholeNumberOfBytes() throws {
        #expect(ConfigValidator.validate(text: conf(with(managedFrontend, "VNET_MTU", "9000")), role: .frontend).config?.mtu == 9000)
        #expect(ConfigValidator.validate(text: conf(managedFrontend), role: .frontend).config?.mtu == nil, "unset: the front end's interface MTU")
        #expect(ConfigValidator.validate(text: conf(with(staticFrontend, "VNET_MTU", "1500")), role: .frontend).config?.mtu == 1500, "every mode")
        for bad in ["9k", "67", "65536", "-1", "1500.0"] {
            expectError(with(managedFrontend, "VNET_MTU", bad), key: "VNET_MTU", "is not an MTU (a whole number of bytes, 68-65535")
        }
        let node = ConfigValidator.validate(text: conf([("VNET_MODE", "MANAGED"), ("VNET_INTERFACE", "eth0"), ("VNET_MTU", "9000")]), role: .node)
        #expect(node.isValid && node.diagnostics.warnings.contains { $0.key == "VNET_MTU" }, "front-end configuration, ignored on a node")
    }

    @Test func theVIDRangeIsCheckedAndReportedWithTheGroupsItAllows() throws {
        let pairs = with(managedFrontend, "VNET_VLANRANGE", "100-199")
        let report = ConfigCheckReport(ConfigValidator.validate(text: conf(pairs), role: .frontend))
        #expect(report.valid)
        #expect(report.capacity.networks == 100 && report.capacity.firstVlan == 100 && report.capacity.lastVlan == 199)
        let text = ConfigCheckReport.text(ConfigValidator.validate(text: conf(pairs), role: .frontend), file: "eucalyptus.conf")
        #expect(text.contains("100 groups' networks") && text.contains("VLAN 100-199 of VNET_VLANRANGE 100-199"))
        expectError(with(managedFrontend, "VNET_VLANRANGE", "10"), key: "VNET_VLANRANGE", "is not a range of VIDs FIRST-LAST")
        expectError(with(managedFrontend, "VNET_VLANRANGE", "20-10"), key: "VNET_VLANRANGE", "is not a range of VIDs FIRST-LAST")
        expectError(with(managedFrontend, "VNET_VLANRANGE", "1-100"), key: "VNET_VLANRANGE", "VIDs are 2-4094")
        expectError(with(managedFrontend, "VNET_VLANRANGE", "10-4095"), key: "VNET_VLANRANGE", "VIDs are 2-4094")
        // Past the subnet's last network (1024 networks: VIDs 2-1025).
        expectError(with(managedFrontend, "VNET_VLANRANGE", "2000-2100"), key: "VNET_VLANRANGE", "their VIDs are 2-1025")
        // A small subnet with the default range: the error says which key to set.
        let small = with(with(with(managedFrontend, "VNET_SUBNET", "10.20.0.0"), "VNET_NETMASK", "255.255.255.0"), "VNET_ADDRSPERNET", "64")
        expectError(small, key: "VNET_ADDRSPERNET", "the default VID range 10-4094 (VNET_VLANRANGE) reaches none of the 4 networks")
        #expect(ConfigValidator.validate(text: conf(with(small, "VNET_VLANRANGE", "2-5")), role: .frontend).isValid)
        // A range wider than the subnet is allowed and says what it gives.
        let wide = ConfigValidator.validate(text: conf(with(managedFrontend, "VNET_VLANRANGE", "1000-2000")), role: .frontend)
        #expect(wide.isValid && wide.diagnostics.warnings.contains { $0.key == "VNET_VLANRANGE" && $0.message.contains("VIDs 1000-1025") })
        // Ignored where nothing is carved.
        #expect(ConfigValidator.validate(text: conf(with(staticFrontend, "VNET_VLANRANGE", "10-20")), role: .frontend).diagnostics.warnings.contains { $0.key == "VNET_VLANRANGE" })
    }

    @Test func unknownModeListsTheFour() {
        expectError(with(managedFrontend, "VNET_MODE", "MANAGED-VLAN"), key: "VNET_MODE",
                    "must be one of SYSTEM, STATIC, MANAGED, MANAGED-NOVLAN")
        expectError([("VNET_MODE", "managed")], key: "VNET_MODE", "did you mean MANAGED")
    }

    @Test func missingModeAndRequiredKeys() {
        let missingMode = onlyError(without(managedFrontend, "VNET_MODE"))
        #expect(missingMode?.key == "VNET_MODE")
        #expect(missingMode?.line == 0)
        let missingSubnet = onlyError(without(managedFrontend, "VNET_SUBNET"))
        #expect(missingSubnet?.key == "VNET_SUBNET")
        #expect(missingSubnet?.line == 0)
        #expect(missingSubnet?.message.contains("required in MANAGED mode on the front end") == true)
        expectError(with(managedFrontend, "VNET_SUBNET", ""), key: "VNET_SUBNET", "is empty")
        let missingMap = onlyError(without(staticFrontend, "VNET_MACMAP"))
        #expect(missingMap?.key == "VNET_MACMAP")
        let missingBridge = onlyError([("VNET_MODE", "STATIC")], role: .node)
        #expect(missingBridge?.key == "VNET_BRIDGE")
        let missingInterface = onlyError([("VNET_MODE", "MANAGED")], role: .node)
        #expect(missingInterface?.key == "VNET_INTERFACE")
    }

    @Test func privateAndPublicInterfacesStandInForInterface() {
        let pairs = with(with(without(managedFrontend, "VNET_INTERFACE"), "VNET_PRIVINTERFACE", "eth1"), "VNET_PUBINTERFACE", "eth2")
        let config = validConfig(pairs)
        #expect(config.privateInterface == "eth1")
        #expect(config.publicInterface == "eth2")
        let onlyPrivate = onlyError(with(without(managedFrontend, "VNET_INTERFACE"), "VNET_PRIVINTERFACE", "eth1"))
        #expect(onlyPrivate?.key == "VNET_PUBINTERFACE")
        let overridden = validConfig(with(managedFrontend, "VNET_PUBINTERFACE", "eth9"))
        #expect(overridden.privateInterface == "eth0")
        #expect(overridden.publicInterface == "eth9")
    }

    @Test func sizeChecksDoNotWaitForAValidSubnet() {
        let pairs = with(with(managedFrontend, "VNET_SUBNET", "10.20.1.0"), "VNET_ADDRSPERNET", "48")
        let errors = ConfigValidator.validate(text: conf(pairs), role: .frontend).diagnostics.errors
        #expect(Set(errors.map(\.key)) == ["VNET_SUBNET", "VNET_ADDRSPERNET"])
    }

    @Test func nonContiguousNetmask() {
        expectError(with(managedFrontend, "VNET_NETMASK", "255.0.255.0"), key: "VNET_NETMASK", "not a contiguous netmask")
    }

    @Test func subnetNotAligned() {
        expectError(with(managedFrontend, "VNET_SUBNET", "10.20.1.0"), key: "VNET_SUBNET", "not aligned to netmask 255.255.0.0")
    }

    @Test(arguments: [("48", "not a power of two"), ("2", "below 4"), ("0", "below 4"), ("131072", "more than the 65536"),
                      ("sixty", "not a whole number")])
    func addressesPerNetwork(value: String, fragment: String) {
        expectError(with(managedFrontend, "VNET_ADDRSPERNET", value), key: "VNET_ADDRSPERNET", fragment)
    }

    @Test(arguments: ["VNET_SUBNET", "VNET_NETMASK", "VNET_DNS", "VNET_CLOUDIP"])
    func malformedIPv4(key: String) {
        for bad in ["10.0.0", "10.0.0.256", "010.0.0.1", "ten", "1.2.3.4.5", "1..2.3"] {
            let pairs = with(managedFrontend, key, bad)
            let check = ConfigValidator.validate(text: conf(pairs), role: .frontend)
            let error = check.diagnostics.errors.first { $0.key == key }
            #expect(error?.line == line(of: key, in: pairs), "\(key)=\(bad)")
            #expect(error?.message.contains("'\(bad)'") == true, "\(key)=\(bad): \(error?.message ?? "none")")
            #expect(!check.isValid)
        }
    }

    @Test func malformedAddressesInKeysTheModeIgnores() {
        // "a malformed IP anywhere": VNET_ROUTER is ignored in MANAGED but still may not be garbage.
        let pairs = with(managedFrontend, "VNET_ROUTER", "10.20.0.999")
        let check = ConfigValidator.validate(text: conf(pairs), role: .frontend)
        #expect(check.diagnostics.errors.contains { $0.key == "VNET_ROUTER" && $0.line == pairs.count })
    }

    @Test func malformedMACInTheMap() {
        // The seed document's own example has a five-octet MAC; it is caught.
        expectError(with(staticFrontend, "VNET_MACMAP", "AA:DD:11:CE:FF:ED=192.168.1.3 AA:DD:CE:FF:EE=192.168.1.4"),
                    key: "VNET_MACMAP", "'AA:DD:CE:FF:EE'")
        expectError(with(staticFrontend, "VNET_MACMAP", "aa:dd:11:ce:ff:gg=192.168.1.3"), key: "VNET_MACMAP", "not a MAC")
        expectError(with(staticFrontend, "VNET_MACMAP", "aa:dd:11:ce:ff:ed"), key: "VNET_MACMAP", "not a MAC=IP pair")
        expectError(with(staticFrontend, "VNET_MACMAP", "01:00:5e:00:00:01=192.168.1.3"), key: "VNET_MACMAP", "multicast")
        expectError(with(staticFrontend, "VNET_MACMAP", "aa:dd:11:ce:ff:ed=192.168.1.300"), key: "VNET_MACMAP", "not an IPv4")
    }

    @Test(arguments: [("10.0.0.5", "outside the subnet"), ("192.168.1.0", "network address"),
                      ("192.168.1.255", "broadcast address"), ("192.168.1.1", "router")])
    func macMapAddressMustBeAnInstanceAddress(address: String, fragment: String) {
        expectError(with(staticFrontend, "VNET_MACMAP", "aa:dd:11:ce:ff:ed=\(address)"), key: "VNET_MACMAP", fragment)
    }

    @Test func macMapDuplicates() {
        expectError(with(staticFrontend, "VNET_MACMAP", "aa:dd:11:ce:ff:ed=192.168.1.3 AA:DD:11:CE:FF:ED=192.168.1.4"),
                    key: "VNET_MACMAP", "MAC aa:dd:11:ce:ff:ed appears twice")
        expectError(with(staticFrontend, "VNET_MACMAP", "aa:dd:11:ce:ff:ed=192.168.1.3 aa:dd:11:ce:ff:ee=192.168.1.3"),
                    key: "VNET_MACMAP", "IP 192.168.1.3 appears twice")
    }

    @Test func staticBroadcastAndRouterAreChecked() {
        expectError(with(staticFrontend, "VNET_BROADCAST", "192.168.1.254"), key: "VNET_BROADCAST", "not the broadcast")
        expectError(with(staticFrontend, "VNET_ROUTER", "192.168.2.1"), key: "VNET_ROUTER", "not a host address")
    }

    @Test func publicIPs() {
        expectError(with(managedFrontend, "VNET_PUBLICIPS", "203.0.113.10 10.20.5.5"), key: "VNET_PUBLICIPS",
                    "10.20.5.5 is inside the private subnet")
        expectError(with(managedFrontend, "VNET_PUBLICIPS", "203.0.113.10 203.0.113.10"), key: "VNET_PUBLICIPS", "listed twice")
        expectError(with(managedFrontend, "VNET_PUBLICIPS", "203.0.113.1-203.0.113.20 203.0.113.15"), key: "VNET_PUBLICIPS",
                    "203.0.113.15 is listed twice")
        expectError(with(managedFrontend, "VNET_PUBLICIPS", "203.0.113.20-203.0.113.10"), key: "VNET_PUBLICIPS", "backwards")
        expectError(with(managedFrontend, "VNET_PUBLICIPS", "203.0.113.x"), key: "VNET_PUBLICIPS", "not an IPv4 address or a range")
        expectError(with(managedFrontend, "VNET_PUBLICIPS", "1.0.0.0-2.0.0.0"), key: "VNET_PUBLICIPS", "more than 65536")
        expectError(with(managedFrontend, "VNET_PUBLICIPS", "127.0.0.1"), key: "VNET_PUBLICIPS", "cannot be a public address")
        let config = validConfig(with(managedFrontend, "VNET_PUBLICIPS", "203.0.113.10-203.0.113.12, 198.51.100.7"))
        #expect(config.publicIPs.map(\.description) == ["203.0.113.10", "203.0.113.11", "203.0.113.12", "198.51.100.7"])
    }

    @Test func virbr0IsRefused() {
        expectError([("VNET_MODE", "SYSTEM"), ("VNET_BRIDGE", "virbr0")], key: "VNET_BRIDGE", "libvirt's NAT bridge", role: .node)
    }

    @Test(arguments: [
        ("eth0-with-a-long-name", "at most 15"),
        ("eth 0", "a space"),
        ("eth0;reboot", "';'"),
        ("eth$(x)", "'$'"),
        ("eth/0", "'/'"),
        ("eth:0", "':'"),
        ("-eth0", "starts with '-'"),
        ("..", "cannot be an interface name"),
    ])
    func interfaceNames(name: String, fragment: String) {
        // Single quotes so the shell layer passes $ and ; through to the name check.
        let text = "VNET_MODE=\"SYSTEM\"\nVNET_BRIDGE='\(name)'\n"
        let check = ConfigValidator.validate(text: text, role: .node)
        let error = check.diagnostics.errors.first
        #expect(check.diagnostics.errors.count == 1, "\(check.diagnostics.errors)")
        #expect(error?.key == "VNET_BRIDGE")
        #expect(error?.line == 2)
        #expect(error?.message.contains(fragment) == true, "\(error?.message ?? "")")
    }

    @Test func vlanDeviceNamesMustFitIFNAMSIZ() {
        // eth0-longer0 is 12 characters; with ".1025" the VLAN device would be 17.
        expectError(with(managedFrontend, "VNET_INTERFACE", "eth0-longer0"), key: "VNET_INTERFACE", "'eth0-longer0.1025' (17 characters)")
        // The same name is fine in MANAGED-NOVLAN, which makes no VLAN devices.
        #expect(ConfigValidator.validate(text: conf(with(with(managedFrontend, "VNET_INTERFACE", "eth0-longer0"), "VNET_MODE", "MANAGED-NOVLAN")), role: .frontend).isValid)
    }

    @Test func shellExpansionIsRefusedInVNETKeys() {
        expectError(with(managedFrontend, "VNET_DNS", "$DNS"), key: "VNET_DNS", "shell expansion")
        // ...but tolerated in keys that are not ours.
        #expect(ConfigValidator.validate(text: conf(managedFrontend) + "EUCA_HOME=\"$HOME\"\n", role: .frontend).isValid)
    }

    @Test func dhcpDaemonAndUser() {
        expectError(with(managedFrontend, "VNET_DHCPDAEMON", "dhcpd"), key: "VNET_DHCPDAEMON", "absolute path")
        expectError(with(managedFrontend, "VNET_DHCPUSER", "Dhcp User"), key: "VNET_DHCPUSER", "not a valid user name")
    }

    @Test func warningsNameLineAndKey() {
        let pairs = managedFrontend + [("VNET_BRIDGE", "br0"), ("VNET_SUBNETT", "1.2.3.0"), ("VNET_DNS", "192.0.2.54")]
        let check = ConfigValidator.validate(text: conf(pairs), role: .frontend)
        #expect(check.isValid)
        let warnings = check.diagnostics.warnings
        #expect(warnings.contains { $0.key == "VNET_BRIDGE" && $0.line == 9 && $0.message.contains("ignored") })
        #expect(warnings.contains { $0.key == "VNET_SUBNETT" && $0.line == 10 && $0.message.contains("did you mean VNET_SUBNET") })
        #expect(warnings.contains { $0.key == "VNET_DNS" && $0.line == 11 && $0.message.contains("first on line 6") })
        // The last assignment wins, as in the shell.
        #expect(check.config?.dns.map(\.description) == ["192.0.2.54"])
    }

    @Test func ignoredKeysByModeAndRole() {
        // A node in MANAGED mode ignores front-end keys; VNET_BRIDGE is ignored in MANAGED (eucabr<vlan> instead).
        let check = ConfigValidator.validate(text: conf([("VNET_MODE", "MANAGED"), ("VNET_INTERFACE", "eth0"),
                                                         ("VNET_BRIDGE", "br0"), ("VNET_SUBNET", "10.0.0.0")]), role: .node)
        #expect(check.isValid)
        #expect(Set(check.diagnostics.warnings.map(\.key)) == ["VNET_BRIDGE", "VNET_SUBNET"])
        // SYSTEM on the front end ignores everything but the mode.
        let system = ConfigValidator.validate(text: conf([("VNET_MODE", "SYSTEM"), ("VNET_SUBNET", "10.0.0.0")]), role: .frontend)
        #expect(system.isValid)
        #expect(system.diagnostics.warnings.map(\.key) == ["VNET_SUBNET"])
    }

    @Test func missingPublicIPsIsOnlyAWarning() {
        let check = ConfigValidator.validate(text: conf(without(managedFrontend, "VNET_PUBLICIPS")), role: .frontend)
        #expect(check.isValid)
        #expect(check.diagnostics.warnings.contains { $0.key == "VNET_PUBLICIPS" && $0.message.contains("allocate-address") })
    }

    @Test func macPrefix() {
        #expect(validConfig(with(managedFrontend, "VNET_MACPREFIX", "AA:BB")).macPrefix.description == "aa:bb")
        expectError(with(managedFrontend, "VNET_MACPREFIX", "d0:0d:00"), key: "VNET_MACPREFIX", "two hex octets")
        expectError(with(managedFrontend, "VNET_MACPREFIX", "01:00"), key: "VNET_MACPREFIX", "multicast")
    }

    @Test func formattedDiagnostics() {
        #expect(Diagnostic.error(line: 7, key: "VNET_SUBNET", "bad").formatted(file: "e.conf") == "e.conf:7: VNET_SUBNET: bad")
        #expect(Diagnostic.error(line: 0, key: "VNET_MODE", "missing").formatted(file: "e.conf") == "e.conf: VNET_MODE: missing")
        #expect(Diagnostic.warning(line: 3, key: "VNET_X", "w").formatted(file: "e.conf") == "e.conf:3: VNET_X: warning: w")
    }
}
