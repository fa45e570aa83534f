#ifndef VNET_SPAWN_H
#define VNET_SPAWN_H
#include <sys/types.h>

/// Starts `path` with `argv` and `envp`, its standard input, output and error on the given descriptors and
/// every other descriptor closed, so that nothing of the caller leaks into the child (or into a daemon the
/// child starts). Returns 0 and sets *pid, or an errno value.
int vnet_spawn(const char *path, char *const argv[], char *const envp[],
               int stdin_fd, int stdout_fd, int stderr_fd, pid_t *pid);

/// Moves the calling thread into the network namespace at `path` (/var/run/netns/NAME); threads it starts
/// afterwards are there too. Returns 0 or an errno value. (setns is not reachable from Swift's Glibc.)
int vnet_enter_network_namespace(const char *path);

#endif
