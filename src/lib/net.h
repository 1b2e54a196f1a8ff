/* net.h — small socket helpers shared by the proxy and the shard supervisor. */
#ifndef MOAT_NET_H
#define MOAT_NET_H

/* Connected unix stream socket to path (CLOEXEC; NONBLOCK when asked),
 * or -1 with errno set. */
int	net_unix_connect(const char *path, int nonblock);

#endif
