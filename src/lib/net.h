/* net.h — small socket helpers shared by the proxy and the shard supervisor. */
#ifndef MOAT_NET_H
#define MOAT_NET_H

/* Connected unix stream socket to path (CLOEXEC; NONBLOCK when asked),
 * or -1 with errno set. */
int	net_unix_connect(const char *path, int nonblock);

struct evbuffer;

/* Append a Redis command (RESP array of bulk strings) to b.  0/-1. */
int	net_resp_command(struct evbuffer *b, int argc,
	    const char *const *argv);

/* Send small writes at once (no Nagle): a relay of a request/reply or
 * replication stream must not wait for the peer's delayed ACK. */
void	net_nodelay(int fd);

#endif
