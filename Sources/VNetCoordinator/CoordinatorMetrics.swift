import VNetBus
import VNetCore

/// What the coordinator exposes on `--metrics`: nodes by state, each node's desired and applied revision,
/// control requests and commits, apply failures and drift the agents reported, messages refused.
extension Coordinator {
    static func declareMetrics(_ metrics: MetricsRegistry) {
        metrics.declare("vnet_revision", .gauge, "The cluster's revision (one per committed change).")
        metrics.declare("vnet_nodes", .gauge, "Hosts by liveness state (UP, SUSPECT, DOWN, NEW: never heard from).")
        metrics.declare("vnet_node_desired_revision", .gauge, "The revision each host should have.")
        metrics.declare("vnet_node_applied_revision", .gauge, "The revision each host last said it applied.")
        metrics.declare("vnet_node_apply_seconds", .gauge, "How long each host's last apply took, as it reported (its heartbeats go on meanwhile).")
        metrics.declare("vnet_instances", .gauge, "Instances the cluster holds.")
        metrics.declare("vnet_control_requests_total", .counter, "vnetctl requests answered, by result (ok, error, not_committed).")
        metrics.declare("vnet_commit_seconds", .histogram, "Time to commit a batch of changes to the state database.")
        metrics.declare("vnet_commit_failures_total", .counter, "Batches the state database refused (disk full, read-only, ...); their requests were refused.")
        metrics.declare("vnet_apply_failures_total", .counter, "Applies a host reported as failed.")
        metrics.declare("vnet_drift_repairs_total", .counter, "Inventories reporting drift repaired on a host.")
        metrics.declare("vnet_messages_refused_total", .counter, "Bus messages dropped, by reason.")
        metrics.declare("vnet_bringup_check_failures_total", .counter, "VLANs that came up on a node but did not pass between it and the front end (MANAGED bring-up checks).")
        metrics.declare("vnet_vlan_path_up", .gauge, "--watch-vlans: 1 when a node's path to the front end passes on the VID (0: untagged), 0 when it fails; absent until known.")
        metrics.declare("vnet_vlan_watch_rounds_total", .counter, "--watch-vlans: probe rounds started.")
        metrics.declare("vnet_vlan_path_changes_total", .counter, "--watch-vlans: paths that changed state, by the state they changed to.")
        metrics.declare("vnet_vlan_watch_budget_frames_per_second", .gauge, "--watch-vlans: the frames per second the watch may send, the whole cluster together.")
        metrics.declare("vnet_coordinator_leader", .gauge, "1 while this coordinator leads (holds the store's lease and serves), 0 on standby.")
        metrics.declare("vnet_coordinator_epoch", .gauge, "The epoch this coordinator leads, or last led, under.")
        metrics.declare("vnet_coordinator_lease_renewals_total", .counter, "Renewals of the leader's lease (PostgreSQL store).")
        metrics.declare("vnet_coordinator_failovers_total", .counter, "Times this coordinator took the lease and became the leader.")
        metrics.set("vnet_commit_failures_total", 0)
        metrics.set("vnet_coordinator_failovers_total", 0)
    }

    func refreshMetrics(at now: Double) {
        metrics.set("vnet_coordinator_leader", leading ? 1 : 0)
        metrics.set("vnet_coordinator_epoch", Double(epoch))
        if let lease = leases?.view() { metrics.set("vnet_coordinator_lease_renewals_total", Double(lease.renewals)) }
        metrics.set("vnet_revision", Double(revision))
        metrics.set("vnet_instances", Double(allocator.state.instances.count))
        var byState: [HostLiveness: Int] = [.up: 0, .suspect: 0, .down: 0, .new: 0]
        var desiredSamples: [MetricFamily.Sample] = [], appliedSamples: [MetricFamily.Sample] = []
        for host in knownHosts {
            byState[session.liveness.state(of: host, at: now), default: 0] += 1
            desiredSamples.append(.init(labels: ["node": host], value: Double(hostRevisions[host]?.revision ?? 0)))
            appliedSamples.append(.init(labels: ["node": host], value: Double(session.applied[host] ?? 0)))
        }
        metrics.replace("vnet_nodes", byState.map { .init(labels: ["state": $0.key.rawValue], value: Double($0.value)) })
        metrics.replace("vnet_node_desired_revision", desiredSamples)
        metrics.replace("vnet_node_applied_revision", appliedSamples)
        if let watch {
            metrics.set("vnet_vlan_watch_budget_frames_per_second", watch.framesPerSecond)
            metrics.replace("vnet_vlan_path_up", watch.states.sorted { $0.key < $1.key }.map {
                .init(labels: ["node": $0.key.node, "vid": String($0.key.vlan)], value: $0.value == .up ? 1 : 0)
            })
        }
        metrics.setRefusals("vnet_messages_refused_total", session.refusals, unauthorized: session.refusals.unauthorized + (zapHandler?.refused ?? 0))
    }
}
