#ifndef MXTIER_CONFIG_H
#define MXTIER_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dnsbl_site.h"
#include "netaddr.h"

/* The file mxtierd and mxtierctl read without -c (the package's conffile). */
#define MXTIER_CONFIG_PATH	"/etc/mxtier/mxtier.conf"

enum tier_role {
	TIER_PRIMARY = 0,
	TIER_SECONDARY,
	TIER_BAIT,
	TIER_COUNT
};

enum client_info_method {
	CLIENT_INFO_NONE = 0,
	CLIENT_INFO_XCLIENT,
	CLIENT_INFO_PROXY_V1,
	CLIENT_INFO_PROXY_V2
};

enum backend_source {
	BACKEND_FROM_APPLIANCE = 0,
	BACKEND_FROM_CLIENT		/* full transparency: the backend sees the client's own address */
};

enum tempfail_stage {
	TEMPFAIL_AT_GREETING = 0,
	TEMPFAIL_AT_RCPT
};

#define STRING_LIST_MAX 1024
struct string_list {
	size_t	count;
	char	**items;
};

#define DNSBL_SITES_MAX 32
struct dnsbl_list {
	size_t			count;
	struct dnsbl_site	*items;
};

/* Operator patterns for dynamic-looking host names, compiled at load. */
#define PATTERNS_MAX 4096
struct pattern_list {
	char	*path;
	size_t	count;
	void	*regexes;	/* regex_t[count] */
};

struct cidr_file {
	char			*path;
	struct cidr_list	 list;
};

#define ADDR_LIST_MAX 256
struct addr_list {
	size_t		count;
	struct netaddr	*items;
};

/*
 * The effective configuration. Reference counted: a session keeps the
 * config it started with across a SIGHUP reload.
 */
struct config {
	int		refcount;
	char		*path;

	struct addr_list tier_ips[TIER_COUNT];
	int64_t		listen_port;

	struct netaddr	backend_addr;
	uint16_t	backend_port;
	int64_t		backend_client_info;	/* enum client_info_method */
	char		*hostname;

	struct cidr_list allow_networks;
	struct cidr_list block_networks;

	int64_t		greet_wait;		/* milliseconds, like every duration */
	int64_t		command_timeout;
	int64_t		data_timeout;
	int64_t		session_timeout;
	int64_t		min_data_rate;		/* bytes per second */
	int64_t		min_data_rate_grace;	/* ms of DATA before min_data_rate is enforced */
	int64_t		backend_connect_timeout;
	int64_t		backend_timeout;
	int64_t		backend_data_timeout;
	int64_t		backend_probe_interval;
	int64_t		backend_pool_size;	/* finished backend connections kept for reuse (0: none) */
	int64_t		backend_pool_idle;	/* how long one may wait in the pool */
	int64_t		backend_pool_max_uses;	/* sessions one connection serves at most */
	int64_t		max_sessions;
	int64_t		max_sessions_per_client;
	int64_t		max_recipients;
	int64_t		max_errors;
	int64_t		message_size_limit;	/* bytes */
	int64_t		shutdown_grace;

	/* Behaviour verdicts across the tiers. */
	int64_t		dns_checks;		/* bool: rDNS and DNSBL lookups on */
	struct string_list dns_servers;		/* "addr" or "addr:port" / "[v6]:port" */
	int64_t		dns_timeout;
	int64_t		dns_cache_size;
	int64_t		dns_cache_min_ttl;
	int64_t		dns_cache_max_ttl;
	struct dnsbl_list dnsbl_sites;
	int64_t		dnsbl_suspect_score;
	int64_t		dnsbl_reject_score;
	struct pattern_list dynamic_rdns_patterns;
	struct cidr_file dynamic_ranges;
	struct string_list trap_recipients;
	int64_t		retry_window;
	int64_t		retry_min_delay;
	int64_t		tempfail_stage;		/* enum tempfail_stage */
	int64_t		pass_ttl;
	int64_t		bait_window;
	int64_t		block_ttl;
	int64_t		block_ttl_max;
	int64_t		hit_and_run_limit;
	int64_t		shed_loadavg;		/* hundredths; 0 = off */
	int64_t		shed_sessions;		/* 0 = off */
	int64_t		history_size;
	int64_t		tarpit_delay;		/* per byte of a suspect's refusal; 0 = off */

	/* Kernel rules and the operator's control socket. */
	int64_t		kernel_sets;		/* bool */
	char		*nft_table;
	int64_t		kernel_fast_path;	/* bool */
	int64_t		transparent;		/* bool */
	int64_t		backend_source;		/* enum backend_source */
	char		*control_socket;
	char		*user;			/* the SMTP engine's account when started as root; "" = no split */

	/* PostgreSQL: shared history, session rows, reputation, listings. */
	char		*database;		/* libpq conninfo; "" = none */
	char		*appliance_name;
	int64_t		db_queue_size;
	int64_t		db_flush_interval;
	int64_t		db_batch_size;
	int64_t		db_retention_days;
	int64_t		db_read_budget;

	/* STARTTLS (tls.c builds the contexts when the config is loaded). */
	char		*tls_cert_file;		/* comma-separated, one per key type (RSA, ECDSA) */
	char		*tls_key_file;		/* the keys, in the same order */
	int64_t		tls_handshake_timeout;
	int64_t		backend_tls;		/* enum backend_tls */
	char		*backend_tls_ca_file;	/* "" = the backend's certificate is not verified */
	void		*tls_server_ctx;	/* SSL_CTX *; NULL without a certificate */
	void		*tls_client_ctx;	/* SSL_CTX *; NULL with backend_tls = none */

	/* The HTTP process: dashboard, /metrics, JSON API (docs/http-api.md). */
	char		*http_listen;		/* ADDRESS:PORT; "" = off */
	struct netaddr	 http_addr;		/* parsed from http_listen */
	uint16_t	 http_port;
	char		*http_tls_cert_file;	/* both set: HTTPS */
	char		*http_tls_key_file;
	char		*http_password_file;	/* user:crypt-hash lines */
	char		*http_token_file;	/* name:token lines */
	int64_t		 http_max_connections;
	char		*dashboard_dir;
	char		*dashboard_database;	/* libpq conninfo for mxtier_reader; "" = no history */
};

const char	*tier_role_name(enum tier_role role);
/* config_http_auth - is authentication configured for the HTTP listener? */
bool		 config_http_auth(const struct config *c);
const char	*client_info_name(enum client_info_method m);

/*
 * config_load - parse FILE into a new config with refcount 1. On error
 * returns NULL and writes "FILE:LINE: key: problem" into err.
 */
struct config	*config_load(const char *path, char *err, size_t errlen);
/* config_load_string - the same from memory (tests); name used in messages. */
struct config	*config_load_string(const char *name, const char *text, char *err, size_t errlen);
/*
 * config_load_draft - config_load for a file an operator is still writing:
 * every check but the one that a tier address is set (the packaged file
 * has none until `mxtierctl tier set` gives the first). Never for the daemon.
 */
struct config	*config_load_draft(const char *path, char *err, size_t errlen);
struct config	*config_ref(struct config *c);
void		 config_unref(struct config *c);
void		 config_print(const struct config *c, FILE *out);

/*
 * config_check_user - what mxtierd -t checks beyond the file as root: that
 * `user` names an unprivileged account. -1 with the problem in err.
 */
int		 config_check_user(const struct config *c, char *err, size_t errlen);

/* Which tier an address is configured for, or -1. */
int		 config_tier_of(const struct config *c, const struct netaddr *a);

/* Value parsers, exposed for tests. Return -1 on a bad value. */
int		 config_parse_duration(const char *text, int64_t *ms);
int		 config_parse_size(const char *text, int64_t *bytes);

#endif
