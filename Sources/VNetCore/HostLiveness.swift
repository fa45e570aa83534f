/// Whether the coordinator hears a host: UP while its heartbeats come, SUSPECT after 2 missed intervals, DOWN
/// after 3 (configurable), NEW until it has been heard from at all. On the wire and in vnetctl's output it is
/// its raw value ("UP"); in code it is compared as this enum only.
public enum HostLiveness: String, Sendable, CaseIterable, Hashable {
    case new = "NEW", up = "UP", suspect = "SUSPECT", down = "DOWN"
}
