import Logging
import VNetCore
import VNetProto

/// The coordinator's own checks, run in the background as short probe runs, one at a time and never beside an
/// operator's verification (an agent probes one at a time, and the front end, the hub of each, takes part in
/// every one): bring-up checks of VLANs that came up on nodes (BringUpQueue), which go first, and rounds of the
/// continuous watch (VLANWatch). An operator's verification that comes while one runs waits for it to end.
extension Coordinator {
    var backgroundRunning: Bool { bringUps.running != nil || watchRound != nil }

    /// Starts the next background check when nothing runs: a bring-up check if one waits, else a watch round
    /// if it is due.
    func startBackgroundCheck(at now: Double) {
        guard !backgroundRunning, session.verifications.isEmpty else { return }
        if startBringUpCheck(at: now) { return }
        startWatchRound(at: now)
    }

    /// Tells the hosts to probe: a star around the front end (nodes probe it only), `count` 2, listening first
    /// 0.3 s (the command reaches hosts a little apart).
    func launchBackgroundRun(id: String, hosts: [String], vlans: [Int], window: Double, at now: Double) {
        var run = VLANVerificationRun(id: id, replyPrefix: [], requestID: "", vlans: vlans, hosts: hosts, control: true, unreachable: [],
                                      deadline: now + window + 3)
        run.background = true
        var command = Vnet_V1_ProbeCommand()
        command.probeID = id
        command.vlans = vlans.map(UInt32.init)
        command.peers = hosts
        command.peerMacs = hosts.map { session.interfaceMACs[$0] ?? 0 }
        command.count = 2
        command.timeoutMs = UInt32(window * 1000)
        command.listenMs = 300
        command.hub = options.frontendName
        _ = perform(session.start(run, command))
    }

    /// A background check ended: judged by what it was; operators' verifications that waited start now.
    func finishBackground(_ run: VLANVerificationRun) {
        let pairs = run.judged().result.pairs
        let ports = Dictionary(uniqueKeysWithValues: run.hosts.compactMap { host in
            session.reports[host]?.neighbors.first.flatMap(LLDPNeighbor.init(wire:)).map { (host, $0) }
        })
        if watchRound?.id == run.id { finishWatchRound(run, pairs: pairs, ports: ports) } else { finishBringUp(run, pairs: pairs, ports: ports) }
        let deferred = deferredVerifications
        deferredVerifications = []
        for item in deferred { startVerification(item.verify, requestID: item.requestID, prefix: item.prefix) }
    }

    // MARK: bring-up checks

    /// MANAGED: the VIDs a commit brought up on nodes (a VLAN device the node did not have), queued for a check
    /// with the front end; a VLAN gone from a node takes its result with it. Only the hosts the commit changed.
    func noteVLANsUp(before: [String: HostNetworkState], after: [String: HostNetworkState], changed: some Sequence<String>, revision: UInt64) {
        guard config.mode == .managed else { return }
        var up: [String: Set<Int>] = [:], current: [String: Set<Int>] = [:]
        for host in changed where host != options.frontendName {
            let now = Set(after[host]?.vlanDevices.map(\.vlan) ?? [])
            current[host] = now
            let new = now.subtracting(before[host]?.vlanDevices.map(\.vlan) ?? [])
            if !new.isEmpty { up[host] = new }
        }
        bringUps.committed(up: up, current: current, revision: revision)
    }

    /// Starts the waiting bring-up checks as one short run (the front end and each node with a new VLAN); nodes
    /// not UP are skipped, saying so. Returns whether a run started.
    func startBringUpCheck(at now: Double) -> Bool {
        guard !bringUps.waiting.isEmpty else { return false }
        operationCounter += 1
        let id = "bringup-\(epoch)-\(operationCounter)"
        guard let (nodes, vlans) = bringUps.next(id: id, busy: false) else { return false }
        let frontend = options.frontendName
        guard session.reachable(frontend, at: now) else {
            for node in nodes { bringUps.skip(node, reason: "not checked: the front end \(frontend) was not UP when the VLAN came up") }
            bringUps.finished(id: id, pairs: [], frontend: frontend, ports: [:])
            return false
        }
        var hosts = [frontend]
        for node in nodes {
            if session.reachable(node, at: now) { hosts.append(node) } else {
                bringUps.skip(node, reason: "not checked: \(node) was \(session.liveness.state(of: node, at: now).rawValue) when the VLAN came up")
            }
        }
        guard hosts.count > 1 else {
            bringUps.finished(id: id, pairs: [], frontend: frontend, ports: [:])
            return false
        }
        launchBackgroundRun(id: id, hosts: hosts, vlans: vlans, window: BringUpQueue.window, at: now)
        log.info("bring-up check \(id): VIDs \(vlans.map(String.init).joined(separator: ",")) between \(frontend) and \(nodes.joined(separator: ", "))")
        return true
    }

    /// A bring-up check ended: each node's new VIDs judged on its pair with the front end; a failure logged.
    func finishBringUp(_ run: VLANVerificationRun, pairs: [VLANVerification.Pair], ports: [String: LLDPNeighbor]) {
        bringUps.finished(id: run.id, pairs: pairs, frontend: options.frontendName, ports: ports)
        for (node, checks) in bringUps.results {
            for check in checks.values where check.state == .failed && run.hosts.contains(node) && run.vlans.contains(check.vlan) {
                log.warning("\(check.detail)", metadata: ["node": "\(node)", "vlan": "\(check.vlan)", "revision": "\(check.revision)"])
                metrics.add("vnet_bringup_check_failures_total", ["node": node])
            }
        }
    }


    // MARK: the watch

    /// What each node carries (MANAGED: the VIDs of its VLAN devices; elsewhere none, the untagged path only).
    func trackWatchedPaths(_ states: [String: HostNetworkState]) {
        var carriage: [String: Set<Int>] = [:]
        for node in allocator.state.nodes.keys { carriage[node] = Set(states[node]?.vlanDevices.map(\.vlan) ?? []) }
        watch?.track(carriage)
    }

    /// The next round of the watch, when its time has come: one VID between the front end and the nodes
    /// carrying it (those UP; the others are not judged), within the budget.
    func startWatchRound(at now: Double) {
        guard var watch, now >= nextWatchAt, session.reachable(options.frontendName, at: now) else { return }
        guard let round = watch.nextRound() else { return }
        self.watch = watch
        let nodes = round.nodes.filter { session.reachable($0, at: now) }
        nextWatchAt = now + watch.spacing(round)
        guard !nodes.isEmpty else { return }
        operationCounter += 1
        let id = "watch-\(epoch)-\(operationCounter)"
        watchRound = (id, VLANWatch.Round(vlan: round.vlan, nodes: nodes))
        launchBackgroundRun(id: id, hosts: [options.frontendName] + nodes, vlans: round.vlan == 0 ? [] : [round.vlan], window: 1.5, at: now)
        metrics.add("vnet_vlan_watch_rounds_total")
    }

    /// A watch round ended: each node's pair with the front end, on the VID and untagged, is a result; a path
    /// whose state changed is logged (named by its switch port when heard) and counted.
    func finishWatchRound(_ run: VLANVerificationRun, pairs: [VLANVerification.Pair], ports: [String: LLDPNeighbor]) {
        guard let (_, round) = watchRound else { return }
        watchRound = nil
        let frontend = options.frontendName
        var results: [VLANWatch.Path: Bool?] = [:]
        for node in round.nodes {
            for vlan in Set([0, round.vlan]) {
                let pair = pairs.first { $0.vlan == vlan && Set([$0.a, $0.b]) == Set([node, frontend]) }
                let result: Bool? = switch pair?.status {
                case .ok: true
                case .failed, .oneWay: false
                case .unreachable, nil: nil
                }
                results[VLANWatch.Path(node: node, vlan: vlan)] = result
            }
        }
        guard var watch else { return }
        for (path, state) in watch.record(results) {
            let name = ports[path.node].map { "\(path.node) (\($0.label))" } ?? path.node
            let what = path.vlan == 0 ? "untagged" : "VID \(path.vlan)"
            let metadata: Logger.Metadata = ["node": "\(path.node)", "vlan": "\(path.vlan)"]
            if state == .down {
                log.warning("VLAN watch: \(what) between \(name) and \(frontend) is DOWN (\(watch.hysteresis) rounds in a row failed)", metadata: metadata)
            } else {
                log.notice("VLAN watch: \(what) between \(name) and \(frontend) is UP (\(watch.hysteresis) rounds in a row passed)", metadata: metadata)
            }
            metrics.add("vnet_vlan_path_changes_total", ["state": state.rawValue])
        }
        self.watch = watch
    }
}
