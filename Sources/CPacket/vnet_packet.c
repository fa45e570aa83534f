#include "vnet_packet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <string.h>
#include <sys/socket.h>
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
