// libzmq from Debian's libzmq3-dev; zmq.h is in /usr/include, so no pkg-config flags are needed.
#include <zmq.h>
