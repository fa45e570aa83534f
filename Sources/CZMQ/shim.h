// libzmq from Debian's libzmq3-dev; zmq.h is in /usr/include, so no pkg-config flags are needed.
#include <zmq.h>
// epoll, for waiting on many sockets' descriptors (ZMQSocketSet); Swift's Glibc module leaves it out.
#include <sys/epoll.h>
