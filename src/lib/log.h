/* log.h — timestamped lines on stderr.  Never pass key material. */
#ifndef MOAT_LOG_H
#define MOAT_LOG_H

void	log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Audit trail of configuration changes: who, what, old -> new. */
void	log_audit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
