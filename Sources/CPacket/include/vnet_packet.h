#ifndef VNET_PACKET_H
#define VNET_PACKET_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// A non-blocking AF_PACKET socket (SOCK_DGRAM, ETH_P_ALL, every interface of the namespace, both directions)
/// that the kernel filters down to DHCP server replies (IPv4, UDP from port 67 to port 68, first fragment), so
/// a busy host copies nothing else to user space. Packets read from it start at the IP header.
/// Needs CAP_NET_RAW. Returns the descriptor, or -errno.
int vnet_dhcp_snoop_open(void);

/// Reads one packet without blocking. Returns its length (0 or more), -EAGAIN when there is none, or -errno.
/// `ifindex` and `pkttype` (PACKET_HOST, PACKET_OUTGOING, ...) say where and how it was seen.
ssize_t vnet_packet_receive(int fd, uint8_t *buffer, size_t length, int *ifindex, int *pkttype);

#endif
