#ifndef VNET_NETLINK_H
#define VNET_NETLINK_H
#include <stddef.h>
#include <stdint.h>

/// The nf_tables ruleset generation of the caller's network namespace (NFT_MSG_GETGEN over NETLINK_NETFILTER):
/// a counter the kernel bumps on every committed ruleset change, in any table and by anyone (iptables-nft,
/// nft, firewalld). Reading it costs one netlink round trip and does not lock or dump the ruleset.
/// `netns_path` names the network namespace to read (/run/netns/NAME, as `ip netns` makes them), NULL for the
/// caller's own; the socket is opened in it from a short-lived thread, so no thread of the caller changes namespace.
/// Returns 0 and fills `generation`, or -errno (-EPROTONOSUPPORT: no nf_tables in this kernel).
int vnet_nft_generation(const char *netns_path, uint32_t *generation);

/// One netlink dump (NLM_F_REQUEST | NLM_F_DUMP) of `type` over `protocol` (NETLINK_ROUTE: RTM_GETLINK,
/// RTM_GETADDR) in the namespace `netns_path` names (NULL: the caller's), with `header` as the request's family
/// message (struct ifinfomsg, struct ifaddrmsg). Every reply message up to NLMSG_DONE, as the kernel sent them
/// (headers included), is returned in one malloc'd buffer the caller frees.
/// Returns 0, or -errno (a kernel error answered in the dump, or ETIMEDOUT after 2 s of silence).
int vnet_netlink_dump(const char *netns_path, int protocol, uint16_t type, const void *header, uint32_t header_length,
                      uint8_t **out, size_t *out_length);

/// A socket (socket(2)'s `domain`, `type`, `protocol`) created in the network namespace `netns_path` names (NULL:
/// the caller's own), for talking to a daemon inside that namespace (dhcpd's OMAPI port on its loopback). It
/// stays in that namespace whichever thread uses it. Returns the descriptor (close-on-exec), or -errno.
int vnet_socket_in_namespace(const char *netns_path, int domain, int type, int protocol);

#endif
