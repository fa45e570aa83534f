#define _GNU_SOURCE
#include "vnet_netlink.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>

struct opening {
    const char *netns_path;
    int domain, type, protocol;
    int result;
};

// A socket belongs to the namespace it was created in for its whole life; the thread that creates it there
// ends right after, so the namespace switch never leaks into a thread of the caller's.
static void *open_in_namespace(void *argument) {
    struct opening *opening = argument;
    int namespace = open(opening->netns_path, O_RDONLY | O_CLOEXEC);
    if (namespace < 0) { opening->result = -errno; return NULL; }
    if (setns(namespace, CLONE_NEWNET) != 0) { opening->result = -errno; close(namespace); return NULL; }
    close(namespace);
    opening->result = socket(opening->domain, opening->type | SOCK_CLOEXEC, opening->protocol);
    if (opening->result < 0) opening->result = -errno;
    return NULL;
}

int vnet_socket_in_namespace(const char *netns_path, int domain, int type, int protocol) {
    if (netns_path == NULL) {
        int fd = socket(domain, type | SOCK_CLOEXEC, protocol);
        return fd < 0 ? -errno : fd;
    }
    struct opening opening = { .netns_path = netns_path, .domain = domain, .type = type, .protocol = protocol, .result = -EINVAL };
    pthread_t thread;
    int error = pthread_create(&thread, NULL, open_in_namespace, &opening);
    if (error != 0) return -error;
    pthread_join(thread, NULL);
    return opening.result;
}

int vnet_nft_generation(const char *netns_path, uint32_t *generation) {
    int fd = vnet_socket_in_namespace(netns_path, AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER);
    if (fd < 0) return fd;
    // A kernel that never answers must not hang the agent's reconcile.
    struct timeval timeout = { .tv_sec = 1, .tv_usec = 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);

    struct {
        struct nlmsghdr header;
        struct nfgenmsg body;
    } request;
    memset(&request, 0, sizeof request);
    request.header.nlmsg_len = sizeof request;
    request.header.nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN;
    request.header.nlmsg_flags = NLM_F_REQUEST;
    request.header.nlmsg_seq = 1;
    request.body.nfgen_family = AF_UNSPEC;
    request.body.version = NFNETLINK_V0;

    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    if (sendto(fd, &request, sizeof request, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    uint8_t buffer[1024];
    for (;;) {
        ssize_t length = recv(fd, buffer, sizeof buffer, 0);
        if (length < 0) {
            int error = errno == EAGAIN ? ETIMEDOUT : errno;
            close(fd);
            return -error;
        }
        for (struct nlmsghdr *message = (struct nlmsghdr *)buffer; NLMSG_OK(message, (size_t)length);
             message = NLMSG_NEXT(message, length)) {
            if (message->nlmsg_seq != request.header.nlmsg_seq) continue;
            if (message->nlmsg_type == NLMSG_ERROR) {
                struct nlmsgerr *failure = NLMSG_DATA(message);
                close(fd);
                return failure->error != 0 ? failure->error : -EBADMSG;
            }
            if (message->nlmsg_type != ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN)) continue;
            // Attributes follow the nfgenmsg header, each aligned to 4 bytes.
            size_t offset = NLMSG_LENGTH(sizeof(struct nfgenmsg));
            while (offset + sizeof(struct nlattr) <= message->nlmsg_len) {
                struct nlattr *attribute = (struct nlattr *)((uint8_t *)message + offset);
                if (attribute->nla_len < sizeof(struct nlattr) || offset + attribute->nla_len > message->nlmsg_len) break;
                if ((attribute->nla_type & NLA_TYPE_MASK) == NFTA_GEN_ID && attribute->nla_len >= NLA_HDRLEN + 4) {
                    uint32_t value;
                    memcpy(&value, (uint8_t *)attribute + NLA_HDRLEN, 4);
                    *generation = ntohl(value);
                    close(fd);
                    return 0;
                }
                offset += NLA_ALIGN(attribute->nla_len);
            }
            close(fd);
            return -EBADMSG;
        }
    }
}

int vnet_netlink_dump(const char *netns_path, int protocol, uint16_t type, const void *header, uint32_t header_length,
                      uint8_t **out, size_t *out_length) {
    *out = NULL;
    *out_length = 0;
    if (header_length > 64) return -EINVAL;
    int fd = vnet_socket_in_namespace(netns_path, AF_NETLINK, SOCK_RAW, protocol);
    if (fd < 0) return fd;
    struct timeval timeout = { .tv_sec = 2, .tv_usec = 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);

    uint8_t request[NLMSG_SPACE(64)];
    memset(request, 0, sizeof request);
    struct nlmsghdr *message = (struct nlmsghdr *)request;
    message->nlmsg_len = NLMSG_LENGTH(header_length);
    message->nlmsg_type = type;
    message->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    message->nlmsg_seq = 1;
    memcpy(NLMSG_DATA(message), header, header_length);
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
    if (sendto(fd, request, message->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
        int error = errno;
        close(fd);
        return -error;
    }

    size_t capacity = 1 << 16, length = 0;
    uint8_t *collected = malloc(capacity);
    if (collected == NULL) { close(fd); return -ENOMEM; }
    int result = 0;
    for (int done = 0; !done;) {
        // The next datagram's size first (MSG_PEEK | MSG_TRUNC), so a large one is never cut.
        ssize_t size = recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC);
        if (size < 0) { result = errno == EAGAIN ? -ETIMEDOUT : -errno; break; }
        if (length + (size_t)size > capacity) {
            while (length + (size_t)size > capacity) capacity *= 2;
            uint8_t *grown = realloc(collected, capacity);
            if (grown == NULL) { result = -ENOMEM; break; }
            collected = grown;
        }
        ssize_t received = recv(fd, collected + length, (size_t)size, 0);
        if (received < 0) { result = errno == EAGAIN ? -ETIMEDOUT : -errno; break; }
        size_t remaining = (size_t)received;
        for (struct nlmsghdr *reply = (struct nlmsghdr *)(collected + length); NLMSG_OK(reply, remaining);
             reply = NLMSG_NEXT(reply, remaining)) {
            if (reply->nlmsg_type == NLMSG_DONE) { done = 1; break; }
            if (reply->nlmsg_type == NLMSG_ERROR) {
                struct nlmsgerr *failure = NLMSG_DATA(reply);
                result = failure->error != 0 ? failure->error : -EBADMSG;
                done = 1;
                break;
            }
        }
        if (result != 0) break;
        length += (size_t)received;
    }
    close(fd);
    if (result != 0) { free(collected); return result; }
    *out = collected;
    *out_length = length;
    return 0;
}
