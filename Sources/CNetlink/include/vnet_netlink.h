#ifndef VNET_NETLINK_H
#define VNET_NETLINK_H
#include <stdint.h>

/// The nf_tables ruleset generation of the caller's network namespace (NFT_MSG_GETGEN over NETLINK_NETFILTER):
/// a counter the kernel bumps on every committed ruleset change, in any table and by anyone (iptables-nft,
/// nft, firewalld). Reading it costs one netlink round trip and does not lock or dump the ruleset.
/// `netns_path` names the network namespace to read (/run/netns/NAME, as `ip netns` makes them), NULL for the
/// caller's own; the socket is opened in it from a short-lived thread, so no thread of the caller changes namespace.
/// Returns 0 and fills `generation`, or -errno (-EPROTONOSUPPORT: no nf_tables in this kernel).
int vnet_nft_generation(const char *netns_path, uint32_t *generation);

#endif
