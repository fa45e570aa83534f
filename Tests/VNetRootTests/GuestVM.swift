import Foundation
import VNetCore
import VNetLinux

/// A real VM guest on a tap, as a hypervisor runs one: qemu (software emulation) started in a node's namespace on
/// the tap the agent made (`-netdev tap,ifname=...,script=no,downscript=no`, which only opens the existing
/// device), the instance's MAC on the guest's virtio-net NIC. The guest is `Tests/vm-lane.sh guest`: Debian's
/// kernel and a busybox init that asks DHCP for its address, pings its router and then answers pings. What it
/// does is read from its serial console (`vnet-guest: ...` lines).
final class GuestVM {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The guest's kernel and initramfs, built once per test run (cached by the script across runs).
    static let image: Result<(kernel: String, initrd: String), GuestFailure> = {
        do {
            let output = String(decoding: try ProcessRunner().run([repository.appendingPathComponent("Tests/vm-lane.sh").path, "guest"], input: nil), as: UTF8.self)
            let paths = output.split(whereSeparator: \.isWhitespace).map(String.init)
            guard paths.count == 2 else { return .failure(GuestFailure(description: "vm-lane.sh guest printed '\(output)'")) }
            return .success((paths[0], paths[1]))
        } catch {
            return .failure(GuestFailure(description: "cannot build the guest (Tests/vm-lane.sh guest): \(error)"))
        }
    }()

    struct GuestFailure: Error, CustomStringConvertible { var description: String }

    let console: String
    let process: Process
    let started = Date()

    /// Boots the guest in `namespace` on the existing tap `tap`, with `mac` on its NIC.
    init(in namespace: ScratchNamespace, tap: String, mac: MACAddress, directory: String) throws {
        let (kernel, initrd) = try Self.image.get()
        console = "\(directory)/guest-\(tap).console"
        FileManager.default.createFile(atPath: console, contents: nil)
        process = try NamespaceFixtures.launchTool(
            ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "192M",
             "-nodefaults", "-display", "none", "-no-reboot", "-serial", "file:\(console)",
             "-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0 quiet loglevel=3 panic=-1",
             "-netdev", "tap,id=n0,ifname=\(tap),script=no,downscript=no", "-device", "virtio-net-pci,netdev=n0,mac=\(mac)"],
            in: namespace, log: "\(directory)/guest-\(tap).qemu.log")
    }

    /// SIGKILL: a test guest has nothing to save, and qemu started by Foundation's Process inherits a signal
    /// mask that blocks SIGTERM (seen here: it never ended on terminate()).
    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
    }

    var output: String { (try? String(contentsOfFile: console, encoding: .utf8)) ?? "" }

    /// Waits for the guest to say `vnet-guest: ready` (it has a lease and tried its router); returns its lines.
    func waitUntilReady(timeout: TimeInterval = 90) throws -> [String] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline, process.isRunning {
            if output.contains("vnet-guest: ready") { readyAfter = Date().timeIntervalSince(started); return lines }
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw GuestFailure(description: "the guest was not ready after \(Int(Date().timeIntervalSince(started))) s; its console:\n\(output.suffix(1500))")
    }

    var lines: [String] { output.split(whereSeparator: \.isNewline).map(String.init).filter { $0.hasPrefix("vnet-guest: ") } }

    /// The address its DHCP lease gave it, and the router it was told about.
    var lease: (address: String, router: String)? {
        guard let line = lines.last(where: { $0.hasPrefix("vnet-guest: bound ") }) else { return nil }
        let words = line.split(separator: " ")
        guard words.count >= 5 else { return nil }
        return (String(words[2].split(separator: "/")[0]), String(words[4]))
    }

    /// Seconds from qemu's start to the guest being ready (boot, DHCP, its router tried), for the figures.
    private(set) var readyAfter: Double?
}

/// The same guest started by libvirt's own QEMU driver, with the domain XML the README gives for the agent's tap
/// (`<interface type='ethernet'>`, `<target dev='vn-...' managed='no'/>`): `virt-qemu-run` runs that driver
/// embedded, with all its state and configuration under a scratch root, so no libvirtd and nothing of the
/// machine's libvirt is involved. It runs in the node's namespace, where the tap is.
final class LibvirtGuest {
    let root: String
    let console: String
    let name: String
    let process: Process

    init(in namespace: ScratchNamespace, tap: String, mac: MACAddress, name: String, directory: String) throws {
        let (kernel, initrd) = try GuestVM.image.get()
        self.name = name
        root = "\(directory)/libvirt-\(name)"
        console = "\(directory)/libvirt-\(name).console"
        try FileManager.default.createDirectory(atPath: "\(root)/etc", withIntermediateDirectories: true)
        // The embedded driver reads ROOT/etc/qemu.conf: QEMU as root (the test's taps and files are root's),
        // no security driver, cgroups, private /dev or virtlogd, none of which this scratch run has.
        try """
            user = "root"
            group = "root"
            dynamic_ownership = 0
            security_driver = "none"
            namespaces = [ ]
            cgroup_controllers = [ ]
            stdio_handler = "file"

            """.write(toFile: "\(root)/etc/qemu.conf", atomically: true, encoding: .utf8)
        try """
            <domain type='qemu'>
              <name>\(name)</name>
              <memory unit='MiB'>192</memory>
              <vcpu>1</vcpu>
              <os>
                <type arch='x86_64' machine='q35'>hvm</type>
                <kernel>\(kernel)</kernel>
                <initrd>\(initrd)</initrd>
                <cmdline>console=ttyS0 quiet loglevel=3 panic=-1</cmdline>
              </os>
              <on_poweroff>destroy</on_poweroff>
              <on_reboot>destroy</on_reboot>
              <on_crash>destroy</on_crash>
              <devices>
                <emulator>/usr/bin/qemu-system-x86_64</emulator>
                <interface type='ethernet'>
                  <mac address='\(mac)'/>
                  <target dev='\(tap)' managed='no'/>
                  <model type='virtio'/>
                </interface>
                <serial type='file'><source path='\(console)'/><target port='0'/></serial>
                <controller type='usb' model='none'/>
                <memballoon model='none'/>
              </devices>
            </domain>

            """.write(toFile: "\(root)/domain.xml", atomically: true, encoding: .utf8)
        process = try NamespaceFixtures.launchTool(["virt-qemu-run", "--verbose", "--root", root, "\(root)/domain.xml"],
                                                   in: namespace, log: "\(directory)/libvirt-\(name).log")
    }

    /// The QEMU that libvirt started (its pid file under the root), then virt-qemu-run itself.
    deinit {
        if let text = try? String(contentsOfFile: "\(root)/run/qemu/\(name).pid", encoding: .utf8), let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            kill(pid, SIGKILL)
        }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
    }

    var output: String { (try? String(contentsOfFile: console, encoding: .utf8)) ?? "" }
    var lines: [String] { output.split(whereSeparator: \.isNewline).map(String.init).filter { $0.hasPrefix("vnet-guest: ") } }

    /// Waits for `vnet-guest: ready`; libvirt first probes QEMU's capabilities (cached under the root), which
    /// takes several seconds under software emulation.
    func waitUntilReady(timeout: TimeInterval = 150, log: String) throws -> [String] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline, process.isRunning {
            if output.contains("vnet-guest: ready") { return lines }
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw GuestVM.GuestFailure(description: "the libvirt guest was not ready; virt-qemu-run said:\n\((try? String(contentsOfFile: log, encoding: .utf8))?.suffix(1500) ?? "")\nconsole:\n\(output.suffix(800))")
    }
}
