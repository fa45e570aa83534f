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
