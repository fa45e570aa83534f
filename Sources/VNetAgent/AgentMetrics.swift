import VNetBus
import VNetCore

/// What an agent exposes on `--metrics`: its revisions, how its applies go and how long they take, drift it
/// repaired, messages it refused and dhcpd restarts. Counters are bumped where things happen; gauges are
/// refreshed by the loop about once a second.
extension Agent {
    static func declareMetrics(_ metrics: MetricsRegistry) {
        metrics.declare("vnet_agent_applied_revision", .gauge, "The revision this host last applied.")
        metrics.declare("vnet_agent_desired_revision", .gauge, "The revision the coordinator last said this host should have (0: not heard yet).")
        metrics.declare("vnet_agent_coordinator_connected", .gauge, "1 while registered and hearing the coordinator.")
        metrics.declare("vnet_agent_applying", .gauge, "1 while a desired state is being applied (heartbeats go on meanwhile).")
        metrics.declare("vnet_agent_apply_seconds", .histogram, "Time to apply a desired state (trigger: update from the coordinator, reconcile, retry of what failed, repair of a dead daemon).")
        metrics.declare("vnet_agent_applies_total", .counter, "Desired states applied, by result.")
        metrics.declare("vnet_agent_reconcile_errors_total", .counter, "Periodic re-applies of the held state that failed.")
        metrics.declare("vnet_agent_drift_repairs_total", .counter, "Applies that found the host changed by hand and put it back.")
        metrics.declare("vnet_agent_messages_refused_total", .counter, "Bus messages dropped, by reason.")
        metrics.declare("vnet_agent_dhcpd_restarts_total", .counter, "Times this agent (re)started dhcpd.")
        metrics.declare("vnet_agent_dhcpd_host_changes_total", .counter, "Host entries this agent added to or removed from the running dhcpd over OMAPI.")
        metrics.declare("vnet_agent_iptables_rules", .gauge, "Rules vnet has in iptables on this host.")
        metrics.set("vnet_agent_reconcile_errors_total", 0)
        metrics.set("vnet_agent_drift_repairs_total", 0)
    }

    func refreshMetrics() {
        let counters = worker.currentCounters
        metrics.set("vnet_agent_applied_revision", Double(session.applied?.revision ?? 0))
        metrics.set("vnet_agent_desired_revision", Double(session.desiredRevision))
        metrics.set("vnet_agent_coordinator_connected", session.isRegistered ? 1 : 0)
        metrics.set("vnet_agent_applying", session.inFlight == nil ? 0 : 1)
        metrics.set("vnet_agent_dhcpd_restarts_total", Double(counters.dhcpdRestarts))
        metrics.set("vnet_agent_dhcpd_host_changes_total", Double(counters.dhcpdHostChanges))
        metrics.set("vnet_agent_iptables_rules", Double(counters.iptablesRules))
        metrics.setRefusals("vnet_agent_messages_refused_total", session.refusals, unauthorized: session.refusals.unauthorized)
    }

    func recordApply(trigger: String, seconds: Double, ok: Bool, drift: Bool) {
        metrics.observe("vnet_agent_apply_seconds", ["trigger": trigger], seconds)
        if trigger == "update" { metrics.add("vnet_agent_applies_total", ["result": ok ? "ok" : "error"]) }
        if trigger == "reconcile", !ok { metrics.add("vnet_agent_reconcile_errors_total") }
        if drift { metrics.add("vnet_agent_drift_repairs_total") }
    }
}
