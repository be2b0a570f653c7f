#ifndef MXTIER_SESSION_RECORD_H
#define MXTIER_SESSION_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "netaddr.h"
#include "reason.h"

/*
 * What one session was, built once when it ends (session_free): the log
 * line, the database row (db_record_session) and the counters all read
 * this, never struct session. Text points into the session and is valid
 * until session_free returns; "" where there is none.
 */
#define SESSION_RECORD_REASONS_MAX	1024

struct session_record {
	uint64_t	 id;
	enum tier_role	 tier;
	struct netaddr	 client;
	const char	*client_text;
	uint16_t	 client_port;
	const char	*tls;		/* the client leg's TLS, e.g. "TLSv1.3/TLS_AES_256_GCM_SHA384" */
	const char	*rdns;		/* the PTR name */
	bool		 fcrdns;
	const char	*rdns_domain;	/* registered domain of rdns when forward-confirmed */
	int		 dnsbl_score;
	const char	*helo;
	const char	*mail_from;	/* the last MAIL FROM */
	const char	*first_rcpt;
	size_t		 rcpts;		/* accepted, whole session */
	unsigned	 messages;
	uint64_t	 bytes;
	enum verdict	 verdict;
	uint64_t	 reasons;	/* bit per enum reason */
	char		 reason_list[SESSION_RECORD_REASONS_MAX];	/* "a,b": reasons_format */
	int64_t		 duration_ms;
	const char	*backend_tls;
	const char	*backend_reply;	/* the backend's last final reply */
};

/* reasons_format - the reason bit set as "a,b" in enum order ("" for none); the one formatter for logs and rows. */
const char	*reasons_format(char *buf, size_t len, uint64_t reasons);
/* session_record_log - the session's summary line. */
void		 session_record_log(const struct session_record *r);

#endif
