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

/// A non-blocking raw AF_PACKET socket on one interface (SOCK_RAW, ETH_P_ALL, PACKET_AUXDATA on) for VLAN probes:
/// whole frames in and out, hand-built 802.1Q tags, no VLAN device. The kernel keeps only frames of `ethertype`
/// (inline after an 802.1Q tag or not; the kernel usually strips the tag and reports it in the aux data).
/// The interface is promiscuous while the socket is open (a membership the kernel drops with the socket), so a
/// NIC that filters VIDs it has no VLAN device for still delivers the probes.
/// Fills the interface's index, MAC and MTU. Needs CAP_NET_RAW. Returns the descriptor, or -errno.
int vnet_probe_open(const char *interface, uint16_t ethertype, int *ifindex, uint8_t mac[6], int *mtu);

/// A non-blocking raw AF_PACKET socket on one interface (SOCK_RAW, PACKET_AUXDATA on, promiscuous while open)
/// that the kernel filters down to DHCP server replies (IPv4 UDP 67 -> 68), tagged inline or not: the
/// rogue-DHCP check sends its DISCOVERs on it (vnet_probe_send) and reads the replies (vnet_probe_receive).
/// Fills the interface's index and MAC. Needs CAP_NET_RAW. Returns the descriptor, or -errno.
int vnet_dhcp_scan_open(const char *interface, int *ifindex, uint8_t mac[6]);

/// A non-blocking raw AF_PACKET socket on one interface for LLDP (EtherType 0x88cc), with the interface taking
/// LLDP's group addresses while it is open. Read with vnet_probe_receive. Needs CAP_NET_RAW. Returns the
/// descriptor, or -errno.
int vnet_lldp_open(const char *interface, int *ifindex);

/// Sends one whole Ethernet frame on the socket's interface. Returns 0 or -errno.
int vnet_probe_send(int fd, int ifindex, const uint8_t *frame, size_t length);

/// Reads one frame without blocking: its length, -EAGAIN when there is none, or -errno. `vlan_tci` is the
/// tag the kernel stripped (valid when `vlan_valid` is 1); `pkttype` is PACKET_HOST, PACKET_OUTGOING, ...
ssize_t vnet_probe_receive(int fd, uint8_t *buffer, size_t length, int *pkttype, int *vlan_valid, uint16_t *vlan_tci);

/// Waits up to `milliseconds` for the socket to be readable: 1, 0 on timeout, or -errno.
int vnet_probe_wait(int fd, int milliseconds);

#endif
