/* api_handlers.h — the endpoints of api.c's routing table. */
#ifndef MOATD_API_HANDLERS_H
#define MOATD_API_HANDLERS_H

#include "api.h"

int	 api_bootstrap_create(struct api_req *, struct err *);
int	 api_bootstrap_join(struct api_req *, struct err *);
int	 api_cluster_store(struct api_req *, struct err *);
int	 api_cluster_store_move(struct api_req *, struct err *);
int	 api_cluster_get(struct api_req *, struct err *);
int	 api_cluster_put(struct api_req *, struct err *);
int	 api_update_cert(struct api_req *, struct err *);
int	 api_certs_get(struct api_req *, struct err *);
int	 api_certs_put(struct api_req *, struct err *);
int	 api_cert_get(struct api_req *, struct err *);
int	 api_cert_history(struct api_req *, struct err *);
int	 api_cert_rollback(struct api_req *, struct err *);
int	 api_cert_delete(struct api_req *, struct err *);
int	 api_certs_rotate(struct api_req *, struct err *);
int	 api_ca_rotate(struct api_req *, struct err *);
int	 api_certs_import(struct api_req *, struct err *);
int	 api_alerts_get(struct api_req *, struct err *);
int	 api_alert_get(struct api_req *, struct err *);
int	 api_logs_get(struct api_req *, struct err *);
int	 api_jobs_get(struct api_req *, struct err *);
int	 api_jobs_put(struct api_req *, struct err *);
int	 api_nodes_get(struct api_req *, struct err *);
int	 api_node_get(struct api_req *, struct err *);
int	 api_node_delete(struct api_req *, struct err *);
int	 api_bdbs_get(struct api_req *, struct err *);
int	 api_bdbs_post(struct api_req *, struct err *);
int	 api_bdb_get(struct api_req *, struct err *);
int	 api_bdb_put(struct api_req *, struct err *);
int	 api_bdb_delete(struct api_req *, struct err *);
int	 api_users_get(struct api_req *, struct err *);
int	 api_user_get(struct api_req *, struct err *);
int	 api_users_post(struct api_req *, struct err *);
int	 api_user_put(struct api_req *, struct err *);
int	 api_user_delete(struct api_req *, struct err *);

#endif
