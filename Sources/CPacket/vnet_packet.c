#include "vnet_packet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <string.h>
#include <sys/socket.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

// Classic BPF over what a SOCK_DGRAM packet socket sees (the network header onward):
//   skb->protocol == IPv4, IP protocol UDP, not a later fragment, UDP source 67, destination 68.
static struct sock_filter dhcp_reply_filter[] = {
    /* 0 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, SKF_AD_OFF + SKF_AD_PROTOCOL),
    /* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IP, 0, 10),
    /* 2 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 9),
    /* 3 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, 8),
    /* 4 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 6),
    /* 5 */ BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x1fff, 6, 0),
    /* 6 */ BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0),
    /* 7 */ BPF_STMT(BPF_LD | BPF_H | BPF_IND, 0),
    /* 8 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 67, 0, 3),
    /* 9 */ BPF_STMT(BPF_LD | BPF_H | BPF_IND, 2),
    /* 10 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 68, 0, 1),
    /* 11 */ BPF_STMT(BPF_RET | BPF_K, 0xffff),
    /* 12 */ BPF_STMT(BPF_RET | BPF_K, 0),
};

int vnet_dhcp_snoop_open(void) {
    int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (fd < 0) return -errno;
    struct sock_fprog program = {
        .len = sizeof(dhcp_reply_filter) / sizeof(dhcp_reply_filter[0]),
        .filter = dhcp_reply_filter,
    };
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof(program)) < 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    // Packets that arrived between socket() and the filter were not filtered: drop them.
    unsigned char scratch[1];
    while (recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT | MSG_TRUNC) >= 0) {}
    return fd;
}

ssize_t vnet_packet_receive(int fd, uint8_t *buffer, size_t length, int *ifindex, int *pkttype) {
    struct sockaddr_ll from;
    socklen_t fromLength = sizeof(from);
    memset(&from, 0, sizeof(from));
    ssize_t received = recvfrom(fd, buffer, length, MSG_DONTWAIT, (struct sockaddr *)&from, &fromLength);
    if (received < 0) return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    if (ifindex) *ifindex = from.sll_ifindex;
    if (pkttype) *pkttype = from.sll_pkttype;
    return received;
}

// A raw packet socket on one interface (SOCK_RAW, non-blocking): bound to `protocol` there, filtered by
// `program` when given (frames that arrived before it are dropped), PACKET_AUXDATA on (the tag the kernel
// stripped), and promiscuous while open when asked. Promiscuous mode for as long as the socket is open: a NIC that
// filters VIDs in hardware (rx-vlan-filter, often "[fixed]": QEMU's virtio-net, many real NICs) drops tagged
// frames of a VID that no VLAN device has registered, before any packet socket sees them; promiscuous, it passes
// them. A membership, not the interface flag: the kernel counts it for this socket and takes it back when the
// socket is closed, also when the process dies, so nothing is left changed on the host. CAP_NET_RAW is enough.
// Fills the index, and the MAC and MTU when asked. Returns the descriptor, or -errno.
static int open_raw(const char *interface, uint16_t protocol, struct sock_fprog *program, int promiscuous,
                    int *ifindex, uint8_t *mac, int *mtu) {
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(protocol));
    if (fd < 0) return -errno;
    struct ifreq request;
    memset(&request, 0, sizeof(request));
    strncpy(request.ifr_name, interface, IFNAMSIZ - 1);
    int error = 0;
    if (ioctl(fd, SIOCGIFINDEX, &request) < 0) { error = errno; goto fail; }
    *ifindex = request.ifr_ifindex;
    if (mac) {
        if (ioctl(fd, SIOCGIFHWADDR, &request) < 0) { error = errno; goto fail; }
        memcpy(mac, request.ifr_hwaddr.sa_data, 6);
    }
    if (mtu) {
        if (ioctl(fd, SIOCGIFMTU, &request) < 0) { error = errno; goto fail; }
        *mtu = request.ifr_mtu;
    }
    if (program && setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, program, sizeof(*program)) < 0) { error = errno; goto fail; }
    int on = 1;
    if (setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &on, sizeof(on)) < 0) { error = errno; goto fail; }
    struct sockaddr_ll address;
    memset(&address, 0, sizeof(address));
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(protocol);
    address.sll_ifindex = *ifindex;
    if (bind(fd, (struct sockaddr *)&address, sizeof(address)) < 0) { error = errno; goto fail; }
    if (promiscuous) {
        struct packet_mreq membership;
        memset(&membership, 0, sizeof(membership));
        membership.mr_ifindex = *ifindex;
        membership.mr_type = PACKET_MR_PROMISC;
        if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &membership, sizeof(membership)) < 0) { error = errno; goto fail; }
    }
    if (program) {
        unsigned char scratch[1];
        while (recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT | MSG_TRUNC) >= 0) {}
    }
    return fd;
fail:
    close(fd);
    return -error;
}

int vnet_probe_open(const char *interface, uint16_t ethertype, int *ifindex, uint8_t mac[6], int *mtu) {
    // Frames of `ethertype`, untagged at offset 12 or after an inline 802.1Q tag at offset 16.
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ethertype, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_8021Q, 0, 3),
        BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 16),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ethertype, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, 0xffff),
        BPF_STMT(BPF_RET | BPF_K, 0),
    };
    struct sock_fprog program = { .len = sizeof(code) / sizeof(code[0]), .filter = code };
    int fd = open_raw(interface, ETH_P_ALL, &program, 1, ifindex, mac, mtu);
    if (fd < 0) return fd;
    // A fleet probing at once sends each host a burst of probes and replies; the default buffer (about 300
    // frames) overflows while the prober waits for a CPU, and MTU probes are up to 64 KiB each. 16 MiB: forced
    // where CAP_NET_ADMIN allows, else as much as net.core.rmem_max lets; memory is taken only as frames wait.
    int size = 16 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    return fd;
}

// Classic BPF over whole frames (SOCK_RAW): IPv4 UDP from port 67 to port 68, first fragment, at offset 14
// (untagged, or the tag already stripped by the kernel) or 18 (an 802.1Q tag still inline).
static struct sock_filter dhcp_frame_filter[] = {
    /* 0 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),
    /* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IP, 0, 9),          // else 11: tagged?
    /* untagged (or the tag stripped): the IP header at 14 */
    /* 2 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 23),
    /* 3 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, 20),
    /* 4 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 20),
    /* 5 */ BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x1fff, 18, 0),
    /* 6 */ BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 14),
    /* 7 */ BPF_STMT(BPF_LD | BPF_H | BPF_IND, 14),
    /* 8 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 67, 0, 15),
    /* 9 */ BPF_STMT(BPF_LD | BPF_H | BPF_IND, 16),
    /* 10 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 68, 12, 13),
    /* an 802.1Q tag inline: the IP header at 18 */
    /* 11 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_8021Q, 0, 12),
    /* 12 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 16),
    /* 13 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IP, 0, 10),
    /* 14 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 27),
    /* 15 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, 8),
    /* 16 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 24),
    /* 17 */ BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x1fff, 6, 0),
    /* 18 */ BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 18),
    /* 19 */ BPF_STMT(BPF_LD | BPF_H | BPF_IND, 18),
    /* 20 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 67, 0, 3),
    /* 21 */ BPF_STMT(BPF_LD | BPF_H | BPF_IND, 20),
    /* 22 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 68, 0, 1),
    /* 23 */ BPF_STMT(BPF_RET | BPF_K, 0xffff),
    /* 24 */ BPF_STMT(BPF_RET | BPF_K, 0),
};

int vnet_dhcp_scan_open(const char *interface, int *ifindex, uint8_t mac[6]) {
    // Promiscuous as the VLAN probe: offers tagged with a VID no device registered, and offers a server unicasts
    // to the made-up client MAC, pass a NIC's filters.
    struct sock_fprog program = {
        .len = sizeof(dhcp_frame_filter) / sizeof(dhcp_frame_filter[0]),
        .filter = dhcp_frame_filter,
    };
    return open_raw(interface, ETH_P_ALL, &program, 1, ifindex, mac, NULL);
}

int vnet_lldp_open(const char *interface, int *ifindex) {
    int fd = open_raw(interface, 0x88cc, NULL, 0, ifindex, NULL, NULL);
    if (fd < 0) return fd;
    // The three group addresses LLDP is sent to (nearest bridge, nearest non-TPMR bridge, nearest customer
    // bridge): a NIC that filters multicast passes them while this socket is open; the kernel takes the
    // memberships back with the socket.
    static const uint8_t groups[3][6] = {
        {0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e}, {0x01, 0x80, 0xc2, 0x00, 0x00, 0x03}, {0x01, 0x80, 0xc2, 0x00, 0x00, 0x00},
    };
    for (int index = 0; index < 3; index++) {
        struct packet_mreq membership;
        memset(&membership, 0, sizeof(membership));
        membership.mr_ifindex = *ifindex;
        membership.mr_type = PACKET_MR_MULTICAST;
        membership.mr_alen = 6;
        memcpy(membership.mr_address, groups[index], 6);
        if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &membership, sizeof(membership)) < 0) {
            int error = errno;
            close(fd);
            return -error;
        }
    }
    return fd;
}

int vnet_probe_send(int fd, int ifindex, const uint8_t *frame, size_t length) {
    struct sockaddr_ll address;
    memset(&address, 0, sizeof(address));
    address.sll_family = AF_PACKET;
    address.sll_ifindex = ifindex;
    address.sll_halen = 6;
    memcpy(address.sll_addr, frame, 6);
    return sendto(fd, frame, length, 0, (struct sockaddr *)&address, sizeof(address)) < 0 ? -errno : 0;
}

ssize_t vnet_probe_receive(int fd, uint8_t *buffer, size_t length, int *pkttype, int *vlan_valid, uint16_t *vlan_tci) {
    struct sockaddr_ll from;
    struct iovec vector = { .iov_base = buffer, .iov_len = length };
    union { struct cmsghdr header; char space[CMSG_SPACE(sizeof(struct tpacket_auxdata))]; } control;
    struct msghdr message;
    memset(&message, 0, sizeof(message));
    message.msg_name = &from;
    message.msg_namelen = sizeof(from);
    message.msg_iov = &vector;
    message.msg_iovlen = 1;
    message.msg_control = &control;
    message.msg_controllen = sizeof(control);
    ssize_t received = recvmsg(fd, &message, MSG_DONTWAIT);
    if (received < 0) return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    *pkttype = from.sll_pkttype;
    *vlan_valid = 0;
    *vlan_tci = 0;
    for (struct cmsghdr *item = CMSG_FIRSTHDR(&message); item; item = CMSG_NXTHDR(&message, item)) {
        if (item->cmsg_level != SOL_PACKET || item->cmsg_type != PACKET_AUXDATA) continue;
        struct tpacket_auxdata aux;
        memcpy(&aux, CMSG_DATA(item), sizeof(aux));
        if (aux.tp_status & TP_STATUS_VLAN_VALID) { *vlan_valid = 1; *vlan_tci = aux.tp_vlan_tci; }
    }
    return received;
}

int vnet_probe_wait(int fd, int milliseconds) {
    struct pollfd item = { .fd = fd, .events = POLLIN };
    int ready = poll(&item, 1, milliseconds);
    return ready < 0 ? -errno : ready;
}
