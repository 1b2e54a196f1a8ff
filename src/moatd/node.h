/*
 * node.h — one moatd: its configuration and the parts it is made of.
 *
 * The control plane flows one way (docs/architecture.md):
 *   control/ writers validate and commit to the store;
 *   the store's watch hands every change to apply/, which makes this node
 *   serve it and writes the node's report;
 *   control/rollout answers the parked requests from those reports.
 * struct node only ties the parts together; each part keeps its own
 * state behind its own header.
 */
#ifndef MOATD_NODE_H
#define MOATD_NODE_H

#include <event2/event.h>

#include "err.h"
#include "store.h"

struct node_config {
	const char	*data_dir;
	const char	*addr;
	int		 api_port;
	int		 cm_port;
	int		 metrics_port;
	const char	*store_url;
	const char	*bootstrap_token;	/* NULL: none */
	int		 workers;		/* data threads; 0: one per core */
	int		 ui_idle_timeout;	/* seconds; UI sessions */
	int		 data_path;		/* enum proxy_data_path */
};

struct applied;		/* apply/apply.c: what this node serves */
struct rollout;		/* control/rollout.c: parked requests */
struct workpool;	/* control/workpool.c: hashing, joins */
struct https;		/* web/https.c: the API and UI listeners */
struct sessions;	/* control/sessions.c: the UI's sign-ins */
struct store_probe;	/* node.c: opening the store off the loop */
struct jobs;		/* control/jobs.c: alerts, renewal, trimming */

struct node {
	struct node_config	 cfg;
	struct event_base	*base;
	/* NULL while a member waits for its store at start (it serves what
	 * it last applied meanwhile). */
	struct store		*store;
	int			 uid;		/* 0: not in a cluster yet */
	struct applied		*ap;
	struct rollout		*ro;
	struct workpool		*wp;
	struct https		*api;
	struct https		*cm;		/* the UI's port */
	struct https		*metrics;	/* the Prometheus exporter */
	struct sessions		*ss;
	struct jobs		*jobs;
	struct event		*store_ev;	/* changes from other nodes */
	struct event		*retry_ev;	/* store retry at start */
	struct store_probe	*probe;		/* that retry, on the pool */
	int			 retry_ms;
	char			*store_url_buf;	/* owned store URL */
};

/* Open the data dir and the store (or, for a member whose store does not
 * answer, serve from what it last applied and retry in the background). */
int	 node_init(struct node *n, struct event_base *base,
	    const struct node_config *cfg, struct err *e);
void	 node_shutdown(struct node *n);
/* 1 when this node belongs to a cluster. */
int	 node_is_member(const struct node *n);
/* Switch to store s (joined, or moved to) under uid, remembering url in
 * DIR/node.json; takes s. */
int	 node_switch_store(struct node *n, struct store *s, const char *url,
	    int uid, struct err *e);
/* Watch the store, announce this node, apply (after init or a switch). */
int	 node_attach_store(struct node *n, struct err *e);

#endif
