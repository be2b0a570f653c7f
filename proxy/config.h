#ifndef MXTIER_CONFIG_H
#define MXTIER_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "netaddr.h"

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
	int64_t		backend_connect_timeout;
	int64_t		backend_timeout;
	int64_t		backend_data_timeout;
	int64_t		backend_probe_interval;
	int64_t		max_sessions;
	int64_t		max_sessions_per_client;
	int64_t		max_recipients;
	int64_t		max_errors;
	int64_t		message_size_limit;	/* bytes */
	int64_t		shutdown_grace;
};

const char	*tier_role_name(enum tier_role role);
const char	*client_info_name(enum client_info_method m);

/*
 * config_load - parse FILE into a new config with refcount 1. On error
 * returns NULL and writes "FILE:LINE: key: problem" into err.
 */
struct config	*config_load(const char *path, char *err, size_t errlen);
/* config_load_string - the same from memory (tests); name used in messages. */
struct config	*config_load_string(const char *name, const char *text, char *err, size_t errlen);
struct config	*config_ref(struct config *c);
void		 config_unref(struct config *c);
void		 config_print(const struct config *c, FILE *out);

/* Which tier an address is configured for, or -1. */
int		 config_tier_of(const struct config *c, const struct netaddr *a);

/* Value parsers, exposed for tests. Return -1 on a bad value. */
int		 config_parse_duration(const char *text, int64_t *ms);
int		 config_parse_size(const char *text, int64_t *bytes);

#endif
