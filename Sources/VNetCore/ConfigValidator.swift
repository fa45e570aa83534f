/// Checks a parsed eucalyptus.conf for one role and builds the typed `VNetConfig`.
///
/// Every finding names its line and key. Malformed addresses are errors wherever they appear, even in keys
/// the mode ignores: a broken value in the file is a mistake waiting for the day the mode changes.
public enum ConfigValidator {
    /// More public addresses than this in VNET_PUBLICIPS is almost certainly a typo in a range.
    public static let maxPublicIPs = 65_536

    public static func validate(text: String, role: HostRole) -> ConfigCheck {
        validate(ConfFile.parse(text), role: role)
    }

    public static func validate(_ file: ConfFile, role: HostRole) -> ConfigCheck {
        var run = ValidationRun(file: file, role: role)
        run.checkKeysAndSyntax()
        let mode = run.resolveMode()
        run.parseValues(mode: mode)
        if let mode {
            run.checkUse(mode: mode)
            run.checkConsistency(mode: mode)
        }
        let diagnostics = run.diagnostics.sorted { ($0.line, $0.key) < ($1.line, $1.key) }
        let config = (mode != nil && !diagnostics.hasErrors) ? run.config : nil
        return ConfigCheck(busListen: run.value(.busListen), busCoordinator: run.value(.busCoordinator), busStore: run.value(.busStore),
                           role: role, mode: mode, config: config, diagnostics: diagnostics)
    }
}

/// The outcome of validation: the config when there is no error, and every diagnostic.
public struct ConfigCheck: Sendable {
    /// VNET_BUS_LISTEN and VNET_BUS_COORDINATOR as written (HOST:PORT), checked by the bus when used.
    public var busListen: String?
    public var busCoordinator: String?
    /// VNET_BUS_STORE as written.
    public var busStore: String?
    public var role: HostRole
    public var mode: NetworkMode?
    public var config: VNetConfig?
    public var diagnostics: [Diagnostic]
    public var isValid: Bool { config != nil }
}

private struct ValidationRun {
    let file: ConfFile
    let role: HostRole
    var diagnostics: [Diagnostic]
    var config: VNetConfig
    /// Line of the effective assignment of each known key that is present.
    var present: [ConfKey: ConfFile.Assignment] = [:]

    init(file: ConfFile, role: HostRole) {
        self.file = file
        self.role = role
        diagnostics = file.syntaxErrors
        config = VNetConfig(mode: .system, role: role)
    }

    mutating func error(_ key: ConfKey, _ message: String) {
        diagnostics.append(.error(line: present[key]?.line ?? 0, key: key.rawValue, message))
    }

    mutating func warning(_ key: ConfKey, _ message: String) {
        diagnostics.append(.warning(line: present[key]?.line ?? 0, key: key.rawValue, message))
    }

    // MARK: keys

    mutating func checkKeysAndSyntax() {
        var firstLine: [String: Int] = [:]
        for assignment in file.assignments where assignment.key.hasPrefix("VNET_") {
            if let known = ConfKey(rawValue: assignment.key) {
                if let earlier = firstLine[assignment.key] {
                    diagnostics.append(.warning(line: assignment.line, key: assignment.key,
                        "set again (first on line \(earlier)); the last value wins, as in the shell"))
                } else {
                    firstLine[assignment.key] = assignment.line
                }
                present[known] = assignment
            } else {
                let hint = closestKey(to: assignment.key).map { "; did you mean \($0)?" } ?? ""
                diagnostics.append(.warning(line: assignment.line, key: assignment.key,
                    "unknown VNET_ key, ignored\(hint)"))
            }
        }
        for (key, assignment) in present where assignment.usesExpansion {
            error(key, "shell expansion ($ or `) is not supported in VNET_* values; write the value out")
        }
    }

    mutating func resolveMode() -> NetworkMode? {
        guard let assignment = present[.mode] else {
            error(.mode, "VNET_MODE is required; it must be one of \(NetworkMode.validList)")
            return nil
        }
        guard let mode = NetworkMode(rawValue: assignment.value) else {
            let upper = NetworkMode(rawValue: assignment.value.uppercased())
            let hint = upper.map { " (did you mean \($0.rawValue)? modes are upper case)" } ?? ""
            error(.mode, "unknown mode '\(assignment.value)'; it must be one of \(NetworkMode.validList)\(hint)")
            return nil
        }
        config.mode = mode
        return mode
    }

    // MARK: values

    /// The value of a present, non-empty key (an empty value counts as unset, as the shell's `[ -n ]` would).
    func value(_ key: ConfKey) -> String? {
        guard let assignment = present[key], !assignment.usesExpansion else { return nil }
        let trimmed = assignment.value.trimmingWhitespace
        return trimmed.isEmpty ? nil : trimmed
    }

    mutating func parseValues(mode: NetworkMode?) {
        for key in [ConfKey.interface, .publicInterface, .privateInterface, .bridge] {
            guard let name = value(key) else { continue }
            if let problem = NameRules.interfaceNameProblem(name) { error(key, problem) }
        }
        if let bridge = value(.bridge), bridge == "virbr0" {
            error(.bridge, "virbr0 is libvirt's NAT bridge and must not carry instances; use the bridge that holds the physical interface (for example br0)")
        }
        config.bridge = value(.bridge)
        config.privateInterface = value(.privateInterface) ?? value(.interface)
        config.publicInterface = value(.publicInterface) ?? value(.interface)

        if let daemon = value(.dhcpDaemon) {
            if !daemon.hasPrefix("/") {
                error(.dhcpDaemon, "'\(daemon)' is not an absolute path (for example /usr/sbin/dhcpd)")
            } else if daemon.unicodeScalars.contains(where: { $0.value < 0x20 }) {
                error(.dhcpDaemon, "the path contains a control character")
            } else {
                config.dhcpDaemon = daemon
            }
        }
        if let user = value(.dhcpUser) {
            if isPortableUserName(user) { config.dhcpUser = user } else {
                error(.dhcpUser, "'\(user)' is not a valid user name (lower-case letters, digits, '_' and '-', at most 32)")
            }
        }
        parseSubnet()
        config.broadcast = parseAddress(.broadcast)
        config.router = parseAddress(.router)
        config.cloudIP = parseAddress(.cloudIP)
        if let dns = value(.dns) {
            for token in dns.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," || $0 == "\n" }) {
                guard let address = IPv4Address(token) else {
                    error(.dns, "'\(token)' is not an IPv4 address"); continue
                }
                if address.isSpecialPurpose {
                    error(.dns, "\(address) cannot serve instances (loopback, link-local, multicast or reserved)")
                    continue
                }
                if config.dns.contains(address) { warning(.dns, "\(address) is listed twice") } else { config.dns.append(address) }
            }
        }
        if let text = value(.addressesPerNetwork) {
            if let number = Int(text), text.allSatisfy(\.isASCII) { config.addressesPerNetwork = number } else {
                error(.addressesPerNetwork, "'\(text)' is not a whole number")
            }
        }
        if let text = value(.vlanRange) {
            do { config.vlanRange = try VLANList.parseRange(text) } catch { self.error(.vlanRange, error.message) }
        }
        if let text = value(.mtu) {
            if let mtu = Int(text), text.allSatisfy(\.isASCII), VNetConfig.mtuRange.contains(mtu) { config.mtu = mtu } else {
                error(.mtu, "'\(text)' is not an MTU (a whole number of bytes, \(VNetConfig.mtuRange.lowerBound)-\(VNetConfig.mtuRange.upperBound), like 1500 or 9000)")
            }
        }
        if let text = value(.macPrefix) {
            if let prefix = MACPrefix(text) {
                if prefix.high >> 8 & 1 == 1 {
                    error(.macPrefix, "'\(text)' makes multicast MACs (the low bit of the first octet is set)")
                } else {
                    config.macPrefix = prefix
                }
            } else {
                error(.macPrefix, "'\(text)' is not a MAC prefix of two hex octets (for example d0:0d)")
            }
        }
        parseMACMap()
        parsePublicIPs()
    }

    mutating func parseAddress(_ key: ConfKey) -> IPv4Address? {
        guard let text = value(key) else { return nil }
        guard let address = IPv4Address(text) else {
            error(key, "'\(text)' is not an IPv4 address (four decimal octets, no leading zeros)")
            return nil
        }
        return address
    }

    mutating func parseSubnet() {
        let subnetAddress = parseAddress(.subnet)
        let mask = parseAddress(.netmask)
        var prefix: Int?
        if let mask {
            prefix = IPv4Network.prefixLength(ofNetmask: mask)
            if prefix == nil { error(.netmask, "\(mask) is not a contiguous netmask (its one-bits must come first)") }
        }
        guard let subnetAddress, let prefix else { return }
        if let network = IPv4Network(address: subnetAddress, prefixLength: prefix) {
            config.subnet = network
        } else {
            let aligned = IPv4Address(subnetAddress.value & IPv4Network.maskValue(prefix))
            error(.subnet, "\(subnetAddress) is not aligned to netmask \(IPv4Network(address: aligned, prefixLength: prefix)!.netmask) (the network would be \(aligned))")
        }
    }

    mutating func parseMACMap() {
        guard let text = value(.macMap) else { return }
        var seenMAC: [MACAddress: String] = [:]
        var seenIP: [IPv4Address: String] = [:]
        for token in text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }) {
            let pair = token.split(separator: "=", omittingEmptySubsequences: false)
            guard pair.count == 2 else {
                error(.macMap, "'\(token)' is not a MAC=IP pair"); continue
            }
            guard let mac = MACAddress(pair[0]) else {
                error(.macMap, "'\(pair[0])' in '\(token)' is not a MAC address (six pairs of hex digits)"); continue
            }
            guard let address = IPv4Address(pair[1]) else {
                error(.macMap, "'\(pair[1])' in '\(token)' is not an IPv4 address"); continue
            }
            if mac.isMulticast || mac.isZero {
                error(.macMap, "\(mac) is a \(mac.isZero ? "zero" : "multicast") MAC and cannot be given to an instance"); continue
            }
            if let other = seenMAC[mac] { error(.macMap, "MAC \(mac) appears twice ('\(other)' and '\(token)')"); continue }
            if let other = seenIP[address] { error(.macMap, "IP \(address) appears twice ('\(other)' and '\(token)')"); continue }
            seenMAC[mac] = String(token)
            seenIP[address] = String(token)
            config.macMap.append(.init(mac: mac, address: address))
        }
    }

    mutating func parsePublicIPs() {
        guard let text = value(.publicIPs) else { return }
        var seen = Set<IPv4Address>()
        for token in text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," || $0 == "\n" }) {
            let ends = token.split(separator: "-", omittingEmptySubsequences: false)
            guard ends.count <= 2, let first = IPv4Address(ends[0]), let last = IPv4Address(ends.last!) else {
                error(.publicIPs, "'\(token)' is not an IPv4 address or a range a.b.c.d-a.b.c.e"); continue
            }
            guard first <= last else { error(.publicIPs, "range '\(token)' runs backwards"); continue }
            let count = UInt64(last.value - first.value) + 1
            guard count + UInt64(seen.count) <= UInt64(ConfigValidator.maxPublicIPs) else {
                error(.publicIPs, "'\(token)' would make more than \(ConfigValidator.maxPublicIPs) public addresses; is the range mistyped?")
                continue
            }
            for value in first.value...last.value {
                let address = IPv4Address(value)
                if address.isSpecialPurpose {
                    error(.publicIPs, "\(address) (in '\(token)') cannot be a public address (loopback, link-local, multicast or reserved)")
                    break
                }
                if !seen.insert(address).inserted {
                    error(.publicIPs, "\(address) is listed twice"); continue
                }
                config.publicIPs.append(address)
            }
        }
    }

    // MARK: use by mode and role

    mutating func checkUse(mode: NetworkMode) {
        for key in ConfKey.allCases {
            switch key.use(mode: mode, role: role) {
            case .required:
                if present[key] == nil {
                    error(key, "\(key.rawValue) is required in \(mode.rawValue) mode on the \(roleName)")
                } else if value(key) == nil, present[key]?.usesExpansion == false {
                    error(key, "\(key.rawValue) is empty; \(mode.rawValue) mode needs it on the \(roleName)")
                }
            case .ignored:
                if value(key) != nil { warning(key, "ignored: \(key.ignoredReason(mode: mode, role: role))") }
            case .optional:
                break
            }
        }
        // VNET_INTERFACE is required unless both of its overrides say the same thing.
        let needsPrivate = (role == .frontend && mode != .system) || (role == .node && mode == .managed)
        let needsPublic = role == .frontend && mode.supportsGroupsAndPublicIPs
        if needsPrivate, config.privateInterface == nil, present[.interface]?.usesExpansion != true {
            error(.interface, "VNET_INTERFACE (or VNET_PRIVINTERFACE) is required in \(mode.rawValue) mode on the \(roleName)")
        }
        if needsPublic, config.publicInterface == nil, config.privateInterface != nil {
            error(.publicInterface, "VNET_PUBINTERFACE (or VNET_INTERFACE) is required in \(mode.rawValue) mode on the front end: public addresses are added there")
        }
        if role == .frontend, mode.supportsGroupsAndPublicIPs, present[.publicIPs] == nil || value(.publicIPs) == nil {
            diagnostics.append(.warning(line: present[.publicIPs]?.line ?? 0, key: ConfKey.publicIPs.rawValue,
                "no public addresses: allocate-address and --public-ip will fail until VNET_PUBLICIPS lists some"))
        }
    }

    var roleName: String { role == .frontend ? "front end" : "node" }

    // MARK: consistency

    mutating func checkConsistency(mode: NetworkMode) {
        guard role == .frontend else { return }
        if mode == .staticMode { checkStatic() }
        if mode.carvesNetworks { checkCarving(mode: mode) }
        if let subnet = config.subnet, mode.supportsGroupsAndPublicIPs {
            let inside = config.publicIPs.filter { subnet.contains($0) }
            if let first = inside.first {
                let more = inside.count > 1 ? " (and \(inside.count - 1) more)" : ""
                error(.publicIPs, "\(first)\(more) is inside the private subnet \(subnet); public addresses must be outside it")
            }
        }
    }

    mutating func checkStatic() {
        guard let subnet = config.subnet else { return }
        if let broadcast = config.broadcast, broadcast != subnet.broadcast {
            error(.broadcast, "\(broadcast) is not the broadcast address of \(subnet) (that is \(subnet.broadcast))")
        }
        if let router = config.router, !subnet.contains(router) || router == subnet.address || router == subnet.broadcast {
            error(.router, "\(router) is not a host address of \(subnet)")
        }
        for mapping in config.macMap {
            let address = mapping.address
            if !subnet.contains(address) {
                error(.macMap, "\(mapping.mac)=\(address): \(address) is outside the subnet \(subnet)")
            } else if address == subnet.address {
                error(.macMap, "\(mapping.mac)=\(address): \(address) is the subnet's network address")
            } else if address == subnet.broadcast {
                error(.macMap, "\(mapping.mac)=\(address): \(address) is the subnet's broadcast address")
            } else if address == config.router {
                error(.macMap, "\(mapping.mac)=\(address): \(address) is the router (VNET_ROUTER)")
            }
        }
    }

    mutating func checkCarving(mode: NetworkMode) {
        guard let perNetwork = config.addressesPerNetwork else { return }
        if perNetwork < 4 {
            error(.addressesPerNetwork, "\(perNetwork) is below 4: a network needs its network, router and broadcast addresses and at least one instance")
            return
        }
        if perNetwork.nonzeroBitCount != 1 {
            error(.addressesPerNetwork, "\(perNetwork) is not a power of two (networks are cut on bit boundaries: 16, 32, 64, 128, 256 ...)")
            return
        }
        // The rest needs the subnet; its own errors are already reported when it is missing or malformed.
        guard let subnet = config.subnet else { return }
        if UInt64(perNetwork) > subnet.size {
            error(.addressesPerNetwork, "\(perNetwork) is more than the \(subnet.size) addresses of \(subnet)")
            return
        }
        let layout = NetworkLayout(subnet: subnet, addressesPerNetwork: perNetwork, vlanRange: config.vlanRange)
        let range = "\(config.vlanRange.lowerBound)-\(config.vlanRange.upperBound)"
        let source = value(.vlanRange) == nil ? "the default VID range \(range) (VNET_VLANRANGE)" : "VNET_VLANRANGE \(range)"
        let subnetVIDs = "\(layout.subnetVLANs.lowerBound)-\(layout.subnetVLANs.upperBound)"
        if layout.allocatable.isEmpty {
            error(value(.vlanRange) == nil ? .addressesPerNetwork : .vlanRange,
                  "\(source) reaches none of the \(layout.networkCount) networks of \(perNetwork) in \(subnet) (their VIDs are \(subnetVIDs), network = SUBNET + (VID-2) x VNET_ADDRSPERNET); widen VNET_SUBNET, use a smaller VNET_ADDRSPERNET or set VNET_VLANRANGE within \(subnetVIDs)")
            return
        }
        if let allowed = layout.allocatableVLANs, allowed.upperBound < config.vlanRange.upperBound, value(.vlanRange) != nil {
            warning(.vlanRange, "\(subnet) reaches VID \(allowed.upperBound) only: groups get VIDs \(allowed.lowerBound)-\(allowed.upperBound) (\(allowed.count) networks)")
        }
        if layout.networksInSubnet > UInt64(NetworkLayout.maxNetworks) {
            warning(.addressesPerNetwork, "\(subnet) holds \(layout.networksInSubnet) networks of \(perNetwork), but only \(NetworkLayout.maxNetworks) are usable (VLAN tags \(NetworkLayout.firstVLAN)-\(NetworkLayout.lastPossibleVLAN)); a larger VNET_ADDRSPERNET uses the rest")
        }
        if mode == .managed, let parent = config.privateInterface {
            let longest = "\(parent).\(layout.lastVLAN)"
            if longest.utf8.count > NameRules.maxInterfaceNameLength {
                let key: ConfKey = value(.privateInterface) != nil ? .privateInterface : .interface
                error(key, "VLAN devices on '\(parent)' would be named up to '\(longest)' (\(longest.utf8.count) characters); the kernel allows \(NameRules.maxInterfaceNameLength)")
            }
        }
        if let cloud = config.cloudIP, cloud.isSpecialPurpose {
            error(.cloudIP, "\(cloud) cannot be the cloud controller's address")
        }
    }
}

private func closestKey(to unknown: String) -> String? {
    let candidates = ConfKey.allCases.map(\.rawValue)
    let scored = candidates.map { ($0, editDistance(Array(unknown.utf8), Array($0.utf8))) }
    guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= 2 else { return nil }
    return best.0
}

private func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
    var previous = Array(0...b.count)
    for (i, x) in a.enumerated() {
        var row = [i + 1]
        for (j, y) in b.enumerated() {
            row.append(Swift.min(previous[j + 1] + 1, row[j] + 1, previous[j] + (x == y ? 0 : 1)))
        }
        previous = row
    }
    return previous[b.count]
}

/// POSIX portable user names as Debian's adduser accepts them by default.
private func isPortableUserName(_ name: String) -> Bool {
    guard (1...32).contains(name.utf8.count), let first = name.unicodeScalars.first,
          ("a"..."z").contains(first) || first == "_" else { return false }
    return name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-" }
}

extension String {
    var trimmingWhitespace: String {
        let scalars = unicodeScalars
        guard let start = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let end = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        return String(scalars[start...end])
    }
}
