/*
 * config.c - the configuration file: every key declared once below, typed,
 * with its default and bounds. Defaults go through the same parser as the
 * file, so -n prints exactly what the daemon uses.
 */
#include "config.h"
#include "tls.h"

#include <ctype.h>
#include <regex.h>
#include <errno.h>
#include <pwd.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum config_type {
	CT_INT = 0,
	CT_DURATION,
	CT_SIZE,
	CT_STRING,
	CT_HOSTNAME,
	CT_ENUM,
	CT_ADDR_LIST,
	CT_CIDR_LIST,
	CT_HOSTPORT,
	CT_DECIMAL,		/* "1.5" stored in hundredths */
	CT_BOOL,
	CT_STRING_LIST,
	CT_DNS_SERVERS,
	CT_DNSBL_LIST,
	CT_PATTERNS_FILE,
	CT_CIDR_FILE
};

struct config_key {
	const char		*name;
	enum config_type	 type;
	size_t			 offset;
	const char		*default_text;
	int64_t			 min, max;	/* ints as is, durations in ms, sizes in bytes */
	const char *const	*enum_values;
};

static const char *const client_info_values[] = { "none", "xclient", "proxy_v1", "proxy_v2", NULL };
static const char *const tempfail_stage_values[] = { "greeting", "rcpt", NULL };
static const char *const backend_source_values[] = { "appliance", "client", NULL };
static const char *const backend_tls_values[] = { "none", "may", "encrypt", NULL };

#define SEC	1000LL
#define MIN	(60 * SEC)
#define HOUR	(60 * MIN)
#define DAY	(24 * HOUR)
#define KIB	1024LL
#define MIB	(1024 * KIB)
#define GIB	(1024 * MIB)
#define OFF(f)	offsetof(struct config, f)

static const struct config_key config_keys[] = {
	{ "primary_ips",		CT_ADDR_LIST, OFF(tier_ips[TIER_PRIMARY]), "", 0, 0, NULL },
	{ "secondary_ips",		CT_ADDR_LIST, OFF(tier_ips[TIER_SECONDARY]), "", 0, 0, NULL },
	{ "bait_ips",			CT_ADDR_LIST, OFF(tier_ips[TIER_BAIT]), "", 0, 0, NULL },
	{ "listen_port",		CT_INT, OFF(listen_port), "25", 1, 65535, NULL },
	{ "backend",			CT_HOSTPORT, OFF(backend_addr), "127.0.0.1:10025", 0, 0, NULL },
	{ "backend_client_info",	CT_ENUM, OFF(backend_client_info), "none", 0, 0, client_info_values },
	{ "hostname",			CT_HOSTNAME, OFF(hostname), "", 0, 0, NULL },
	{ "allow_networks",		CT_CIDR_LIST, OFF(allow_networks), "", 0, 0, NULL },
	{ "block_networks",		CT_CIDR_LIST, OFF(block_networks), "", 0, 0, NULL },
	{ "greet_wait",			CT_DURATION, OFF(greet_wait), "6s", 0, 60 * SEC, NULL },
	{ "command_timeout",		CT_DURATION, OFF(command_timeout), "5m", 1 * SEC, HOUR, NULL },
	{ "data_timeout",		CT_DURATION, OFF(data_timeout), "3m", 1 * SEC, HOUR, NULL },
	{ "session_timeout",		CT_DURATION, OFF(session_timeout), "1h", 10 * SEC, DAY, NULL },
	{ "min_data_rate",		CT_INT, OFF(min_data_rate), "128", 0, 1000000000, NULL },
	{ "min_data_rate_grace",	CT_DURATION, OFF(min_data_rate_grace), "30s", 1 * SEC, HOUR, NULL },
	{ "backend_connect_timeout",	CT_DURATION, OFF(backend_connect_timeout), "30s", 1 * SEC, 10 * MIN, NULL },
	{ "backend_timeout",		CT_DURATION, OFF(backend_timeout), "5m", 1 * SEC, HOUR, NULL },
	{ "backend_data_timeout",	CT_DURATION, OFF(backend_data_timeout), "10m", 1 * SEC, HOUR, NULL },
	{ "backend_probe_interval",	CT_DURATION, OFF(backend_probe_interval), "30s", 1 * SEC, HOUR, NULL },
	{ "backend_pool_size",		CT_INT, OFF(backend_pool_size), "16", 0, 10000, NULL },
	{ "backend_pool_idle",		CT_DURATION, OFF(backend_pool_idle), "30s", 1 * SEC, HOUR, NULL },
	{ "backend_pool_max_uses",	CT_INT, OFF(backend_pool_max_uses), "100", 1, 1000000, NULL },
	{ "max_sessions",		CT_INT, OFF(max_sessions), "1000", 1, 200000, NULL },
	{ "max_sessions_per_client",	CT_INT, OFF(max_sessions_per_client), "20", 1, 200000, NULL },
	{ "max_recipients",		CT_INT, OFF(max_recipients), "100", 100, 100000, NULL },
	{ "max_errors",			CT_INT, OFF(max_errors), "20", 1, 1000, NULL },
	{ "message_size_limit",		CT_SIZE, OFF(message_size_limit), "25m", 1 * KIB, 2 * GIB, NULL },
	{ "shutdown_grace",		CT_DURATION, OFF(shutdown_grace), "30s", 0, HOUR, NULL },
	{ "dns_checks",			CT_BOOL, OFF(dns_checks), "no", 0, 1, NULL },
	{ "dns_servers",		CT_DNS_SERVERS, OFF(dns_servers), "", 0, 0, NULL },
	{ "dns_timeout",		CT_DURATION, OFF(dns_timeout), "3s", 100, 30 * SEC, NULL },
	{ "dns_cache_size",		CT_INT, OFF(dns_cache_size), "10000", 0, 1000000, NULL },
	{ "dns_cache_min_ttl",		CT_DURATION, OFF(dns_cache_min_ttl), "1m", 0, DAY, NULL },
	{ "dns_cache_max_ttl",		CT_DURATION, OFF(dns_cache_max_ttl), "1h", 0, 7 * DAY, NULL },
	{ "dnsbl_sites",		CT_DNSBL_LIST, OFF(dnsbl_sites), "", 0, 0, NULL },
	{ "dnsbl_suspect_score",	CT_INT, OFF(dnsbl_suspect_score), "1", 1, 1000, NULL },
	{ "dnsbl_reject_score",		CT_INT, OFF(dnsbl_reject_score), "3", 1, 1000, NULL },
	{ "dynamic_rdns_patterns_file",	CT_PATTERNS_FILE, OFF(dynamic_rdns_patterns), "", 0, 0, NULL },
	{ "dynamic_ranges_file",	CT_CIDR_FILE, OFF(dynamic_ranges), "", 0, 0, NULL },
	{ "trap_recipients",		CT_STRING_LIST, OFF(trap_recipients), "", 0, 0, NULL },
	{ "retry_window",		CT_DURATION, OFF(retry_window), "4h", 1 * SEC, 7 * DAY, NULL },
	{ "retry_min_delay",		CT_DURATION, OFF(retry_min_delay), "4m", 0, DAY, NULL },
	{ "tempfail_stage",		CT_ENUM, OFF(tempfail_stage), "greeting", 0, 0, tempfail_stage_values },
	{ "pass_ttl",			CT_DURATION, OFF(pass_ttl), "35d", 1 * SEC, 365 * DAY, NULL },
	{ "bait_window",		CT_DURATION, OFF(bait_window), "1h", 1 * SEC, 7 * DAY, NULL },
	{ "block_ttl",			CT_DURATION, OFF(block_ttl), "1h", 1 * SEC, 30 * DAY, NULL },
	{ "block_ttl_max",		CT_DURATION, OFF(block_ttl_max), "1d", 1 * SEC, 365 * DAY, NULL },
	{ "hit_and_run_limit",		CT_INT, OFF(hit_and_run_limit), "3", 1, 1000, NULL },
	{ "shed_loadavg",		CT_DECIMAL, OFF(shed_loadavg), "0", 0, 100000, NULL },
	{ "shed_sessions",		CT_INT, OFF(shed_sessions), "0", 0, 200000, NULL },
	{ "history_size",		CT_INT, OFF(history_size), "100000", 100, 10000000, NULL },
	{ "tarpit_delay",		CT_DURATION, OFF(tarpit_delay), "0", 0, 1 * SEC, NULL },
	{ "kernel_sets",		CT_BOOL, OFF(kernel_sets), "no", 0, 1, NULL },
	{ "nft_table",			CT_HOSTNAME, OFF(nft_table), "mxtier", 0, 0, NULL },
	{ "kernel_fast_path",		CT_BOOL, OFF(kernel_fast_path), "no", 0, 1, NULL },
	{ "transparent",		CT_BOOL, OFF(transparent), "no", 0, 1, NULL },
	{ "backend_source",		CT_ENUM, OFF(backend_source), "appliance", 0, 0, backend_source_values },
	{ "control_socket",		CT_STRING, OFF(control_socket), "", 0, 0, NULL },
	{ "user",			CT_STRING, OFF(user), "mxtier", 0, 0, NULL },
	{ "database",			CT_STRING, OFF(database), "", 0, 0, NULL },
	{ "appliance_name",		CT_HOSTNAME, OFF(appliance_name), "", 0, 0, NULL },
	{ "db_queue_size",		CT_INT, OFF(db_queue_size), "10000", 100, 1000000, NULL },
	{ "db_flush_interval",		CT_DURATION, OFF(db_flush_interval), "50ms", 1, 10 * SEC, NULL },
	{ "db_batch_size",		CT_INT, OFF(db_batch_size), "500", 1, 5000, NULL },
	{ "db_retention_days",		CT_INT, OFF(db_retention_days), "30", 1, 3650, NULL },
	{ "db_read_budget",		CT_DURATION, OFF(db_read_budget), "200ms", 10, 10 * SEC, NULL },
	{ "tls_cert_file",		CT_STRING, OFF(tls_cert_file), "", 0, 0, NULL },
	{ "tls_key_file",		CT_STRING, OFF(tls_key_file), "", 0, 0, NULL },
	{ "tls_handshake_timeout",	CT_DURATION, OFF(tls_handshake_timeout), "10s", 1 * SEC, 5 * MIN, NULL },
	{ "backend_tls",		CT_ENUM, OFF(backend_tls), "none", 0, 0, backend_tls_values },
	{ "backend_tls_ca_file",	CT_STRING, OFF(backend_tls_ca_file), "", 0, 0, NULL },
	{ "http_listen",		CT_STRING, OFF(http_listen), "", 0, 0, NULL },
	{ "http_tls_cert_file",		CT_STRING, OFF(http_tls_cert_file), "", 0, 0, NULL },
	{ "http_tls_key_file",		CT_STRING, OFF(http_tls_key_file), "", 0, 0, NULL },
	{ "http_password_file",		CT_STRING, OFF(http_password_file), "", 0, 0, NULL },
	{ "http_token_file",		CT_STRING, OFF(http_token_file), "", 0, 0, NULL },
	{ "http_max_connections",	CT_INT, OFF(http_max_connections), "64", 1, 10000, NULL },
	{ "dashboard_dir",		CT_STRING, OFF(dashboard_dir), "/usr/share/mxtier/dashboard", 0, 0, NULL },
	{ "dashboard_database",		CT_STRING, OFF(dashboard_database), "", 0, 0, NULL },
};
#define CONFIG_KEY_COUNT (sizeof(config_keys) / sizeof(config_keys[0]))

static const char *const tier_names[TIER_COUNT] = { "primary", "secondary", "bait" };

const char *
tier_role_name(enum tier_role role)
{
	return (unsigned)role < TIER_COUNT ? tier_names[role] : "?";
}

const char *
client_info_name(enum client_info_method m)
{
	return (unsigned)m < 4 ? client_info_values[m] : "?";
}

/* parse_number_suffix - "<digits><suffix>" with a table of suffix multipliers. */
static int
parse_number_suffix(const char *text, int64_t *out, const char *const *suffixes, const int64_t *mult, int64_t plain_mult)
{
	char *end;
	long long n;

	if (!isdigit((unsigned char)text[0]))
		return -1;
	errno = 0;
	n = strtoll(text, &end, 10);
	if (errno)
		return -1;
	if (*end == '\0') {
		if (n > INT64_MAX / plain_mult)
			return -1;
		*out = n * plain_mult;
		return 0;
	}
	for (size_t i = 0; suffixes[i]; i++) {
		if (strcasecmp(end, suffixes[i]) == 0) {
			if (n > INT64_MAX / mult[i])
				return -1;
			*out = n * mult[i];
			return 0;
		}
	}
	return -1;
}

int
config_parse_duration(const char *text, int64_t *ms)
{
	static const char *const sfx[] = { "ms", "s", "m", "h", "d", NULL };
	static const int64_t mult[] = { 1, SEC, MIN, HOUR, DAY };

	return parse_number_suffix(text, ms, sfx, mult, SEC);
}

int
config_parse_size(const char *text, int64_t *bytes)
{
	static const char *const sfx[] = { "k", "m", "g", NULL };
	static const int64_t mult[] = { KIB, MIB, GIB };

	return parse_number_suffix(text, bytes, sfx, mult, 1);
}

static int
parse_int(const char *text, int64_t *out)
{
	char *end;
	long long n;

	if (text[0] == '\0')
		return -1;
	errno = 0;
	n = strtoll(text, &end, 10);
	if (errno || *end != '\0')
		return -1;
	*out = n;
	return 0;
}

/* hostname_valid - letters, digits, '-' and '.', labels of 1..63. */
static bool
hostname_valid(const char *name)
{
	size_t len = strlen(name), label = 0;

	if (len == 0 || len > 255)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)c) && c != '-' && c != '_')
			return false;
		if (++label > 63)
			return false;
	}
	return true;
}

/* Splits a list value on commas and blanks, calling fn per item. */
static int
parse_list(const char *text, int (*fn)(const char *item, void *arg), void *arg, char *err, size_t errlen)
{
	char *copy = strdup(text), *save = NULL;
	int rc = 0;

	if (copy == NULL)
		abort();
	for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		if (fn(tok, arg) == -1) {
			snprintf(err, errlen, "bad item \"%s\"", tok);
			rc = -1;
			break;
		}
	}
	free(copy);
	return rc;
}

static int
string_list_add(const char *item, void *arg)
{
	struct string_list *l = arg;
	char **grown;

	if (l->count >= STRING_LIST_MAX || strlen(item) > 512)
		return -1;
	grown = realloc(l->items, (l->count + 1) * sizeof(*grown));
	if (grown == NULL)
		abort();
	l->items = grown;
	if ((l->items[l->count++] = strdup(item)) == NULL)
		abort();
	return 0;
}

static void
string_list_clear(struct string_list *l)
{
	for (size_t i = 0; i < l->count; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->count = 0;
}

/* dns_server_add - "addr", "addr:port" or "[v6]:port". */
static int
dns_server_add(const char *item, void *arg)
{
	struct netaddr a;
	uint16_t port;

	if (netaddr_parse(item, &a) == -1 && hostport_parse(item, &a, &port) == -1)
		return -1;
	return string_list_add(item, arg);
}

static int
dnsbl_list_add(const char *item, void *arg)
{
	struct dnsbl_list *l = arg;
	struct dnsbl_site site;
	struct dnsbl_site *grown;

	if (l->count >= DNSBL_SITES_MAX || dnsbl_site_parse(item, &site) == -1)
		return -1;
	grown = realloc(l->items, (l->count + 1) * sizeof(*grown));
	if (grown == NULL)
		abort();
	l->items = grown;
	l->items[l->count++] = site;
	return 0;
}

static void
pattern_list_clear(struct pattern_list *l)
{
	regex_t *re = l->regexes;

	for (size_t i = 0; i < l->count; i++)
		regfree(&re[i]);
	free(l->regexes);
	free(l->path);
	memset(l, 0, sizeof(*l));
}

/*
 * read_list_file - call fn for each non-comment line of path. Errors name
 * the file and its line, since the operator edits that file, not ours.
 */
static int
read_list_file(const char *path, int (*fn)(const char *line, void *arg), void *arg, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	unsigned lineno = 0;

	if (f == NULL) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *hash = strchr(line, '#'), *item;

		lineno++;
		if (hash)
			*hash = '\0';
		item = line;
		while (isspace((unsigned char)*item))
			item++;
		for (char *end = item + strlen(item); end > item && isspace((unsigned char)end[-1]);)
			*--end = '\0';
		if (*item == '\0')
			continue;
		if (fn(item, arg) == -1) {
			snprintf(err, errlen, "%s:%u: bad entry \"%.100s\"", path, lineno, item);
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	return 0;
}

static int
pattern_add(const char *item, void *arg)
{
	struct pattern_list *l = arg;
	regex_t *grown;

	if (l->count >= PATTERNS_MAX)
		return -1;
	grown = realloc(l->regexes, (l->count + 1) * sizeof(regex_t));
	if (grown == NULL)
		abort();
	l->regexes = grown;
	if (regcomp(&grown[l->count], item, REG_EXTENDED | REG_ICASE | REG_NOSUB) != 0)
		return -1;
	l->count++;
	return 0;
}

static int
addr_list_add(const char *item, void *arg)
{
	struct addr_list *l = arg;
	struct netaddr a;
	struct netaddr *grown;

	if (netaddr_parse(item, &a) == -1 || l->count >= ADDR_LIST_MAX)
		return -1;
	netaddr_normalize(&a);
	grown = realloc(l->items, (l->count + 1) * sizeof(*grown));
	if (grown == NULL)
		abort();
	l->items = grown;
	l->items[l->count++] = a;
	return 0;
}

static int
cidr_list_add(const char *item, void *arg)
{
	struct cidr_list *l = arg;
	struct cidr c;
	struct cidr *grown;

	if (cidr_parse(item, &c) == -1 || l->count >= CIDR_LIST_MAX)
		return -1;
	grown = realloc(l->items, (l->count + 1) * sizeof(*grown));
	if (grown == NULL)
		abort();
	l->items = grown;
	l->items[l->count++] = c;
	return 0;
}

/* config_set - parse one value into the config; on error fill err (without file:line). */
static int
config_set(struct config *c, const struct config_key *k, const char *value, char *err, size_t errlen)
{
	void *field = (char *)c + k->offset;
	int64_t n;

	switch (k->type) {
	case CT_INT:
	case CT_DURATION:
	case CT_SIZE: {
		int rc = k->type == CT_INT ? parse_int(value, &n) :
		    k->type == CT_DURATION ? config_parse_duration(value, &n) : config_parse_size(value, &n);

		if (rc == -1) {
			snprintf(err, errlen, "bad %s \"%s\"%s", k->type == CT_INT ? "number" :
			    k->type == CT_DURATION ? "duration" : "size", value,
			    k->type == CT_DURATION ? " (use s, m, h or d)" : k->type == CT_SIZE ? " (use k, m or g)" : "");
			return -1;
		}
		if (n < k->min || n > k->max) {
			snprintf(err, errlen, "\"%s\" out of range (%lld..%lld%s)", value, (long long)k->min,
			    (long long)k->max, k->type == CT_DURATION ? " ms" : k->type == CT_SIZE ? " bytes" : "");
			return -1;
		}
		*(int64_t *)field = n;
		return 0;
	}
	case CT_STRING:
	case CT_HOSTNAME: {
		char **s = field;

		if (k->type == CT_HOSTNAME && value[0] != '\0' && !hostname_valid(value)) {
			snprintf(err, errlen, "\"%s\" is not a valid host name", value);
			return -1;
		}
		free(*s);
		*s = strdup(value);
		if (*s == NULL)
			abort();
		return 0;
	}
	case CT_ENUM:
		for (int64_t i = 0; k->enum_values[i]; i++) {
			if (strcmp(value, k->enum_values[i]) == 0) {
				*(int64_t *)field = i;
				return 0;
			}
		}
		snprintf(err, errlen, "\"%s\" is not one of", value);
		for (size_t i = 0; k->enum_values[i]; i++) {
			size_t used = strlen(err);

			snprintf(err + used, errlen - used, "%s %s", i ? "," : "", k->enum_values[i]);
		}
		return -1;
	case CT_ADDR_LIST: {
		struct addr_list *l = field;

		free(l->items);
		l->items = NULL;
		l->count = 0;
		if (parse_list(value, addr_list_add, l, err, errlen) == -1) {
			strncat(err, " (an IPv4 or IPv6 address)", errlen - strlen(err) - 1);
			return -1;
		}
		return 0;
	}
	case CT_CIDR_LIST: {
		struct cidr_list *l = field;

		cidr_list_clear(l);
		if (parse_list(value, cidr_list_add, l, err, errlen) == -1) {
			strncat(err, " (a network like 192.0.2.0/24 or 2001:db8::/32)", errlen - strlen(err) - 1);
			return -1;
		}
		return 0;
	}
	case CT_HOSTPORT:
		if (hostport_parse(value, &c->backend_addr, &c->backend_port) == -1) {
			snprintf(err, errlen, "\"%s\" is not ADDRESS:PORT or [IPV6]:PORT", value);
			return -1;
		}
		return 0;
	case CT_BOOL:
		if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0 || strcmp(value, "on") == 0) {
			*(int64_t *)field = 1;
		} else if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0 || strcmp(value, "off") == 0) {
			*(int64_t *)field = 0;
		} else {
			snprintf(err, errlen, "\"%s\" is not yes or no", value);
			return -1;
		}
		return 0;
	case CT_DECIMAL: {
		char *end;
		double d = strtod(value, &end);

		if (!isdigit((unsigned char)value[0]) || *end != '\0') {
			snprintf(err, errlen, "bad decimal number \"%s\"", value);
			return -1;
		}
		n = (int64_t)(d * 100 + 0.5);
		if (n < k->min || n > k->max) {
			snprintf(err, errlen, "\"%s\" out of range (%.2f..%.2f)", value, k->min / 100.0, k->max / 100.0);
			return -1;
		}
		*(int64_t *)field = n;
		return 0;
	}
	case CT_STRING_LIST:
	case CT_DNS_SERVERS: {
		struct string_list *l = field;

		string_list_clear(l);
		if (parse_list(value, k->type == CT_DNS_SERVERS ? dns_server_add : string_list_add, l, err, errlen) == -1) {
			if (k->type == CT_DNS_SERVERS)
				strncat(err, " (an address, ADDRESS:PORT or [IPV6]:PORT)", errlen - strlen(err) - 1);
			return -1;
		}
		return 0;
	}
	case CT_DNSBL_LIST: {
		struct dnsbl_list *l = field;

		free(l->items);
		l->items = NULL;
		l->count = 0;
		if (parse_list(value, dnsbl_list_add, l, err, errlen) == -1) {
			strncat(err, " (zone[=127.0.0.[2..11]][*weight], weight -100..100)", errlen - strlen(err) - 1);
			return -1;
		}
		return 0;
	}
	case CT_PATTERNS_FILE: {
		struct pattern_list *l = field;

		pattern_list_clear(l);
		if (value[0] == '\0')
			return 0;
		if ((l->path = strdup(value)) == NULL)
			abort();
		return read_list_file(value, pattern_add, l, err, errlen);
	}
	case CT_CIDR_FILE: {
		struct cidr_file *cf = field;

		free(cf->path);
		cf->path = NULL;
		cidr_list_clear(&cf->list);
		if (value[0] == '\0')
			return 0;
		if ((cf->path = strdup(value)) == NULL)
			abort();
		return read_list_file(value, cidr_list_add, &cf->list, err, errlen);
	}
	}
	snprintf(err, errlen, "internal: unknown key type");
	return -1;
}

static const struct config_key *
config_key_find(const char *name)
{
	for (size_t i = 0; i < CONFIG_KEY_COUNT; i++)
		if (strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

static struct config *
config_new_defaults(void)
{
	struct config *c = calloc(1, sizeof(*c));
	char err[256];

	if (c == NULL)
		abort();
	c->refcount = 1;
	for (size_t i = 0; i < CONFIG_KEY_COUNT; i++)
		if (config_set(c, &config_keys[i], config_keys[i].default_text, err, sizeof(err)) == -1)
			abort();	/* a default outside its own bounds is a bug */
	return c;
}

static char *
trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

static const struct config_key *config_key_find(const char *name);


/* config_http_auth - a password or token file is set (the listener may then leave loopback). */
bool
config_http_auth(const struct config *c)
{
	return c->http_password_file[0] != '\0' || c->http_token_file[0] != '\0';
}

/*
 * config_check_http - http_listen parses, and a listener beyond loopback
 * has authentication: a dashboard that can unblock senders must not be
 * open to whoever reaches the address.
 */
static int
config_check_http(struct config *c, char *err, size_t errlen)
{
	bool loopback;

	memset(&c->http_addr, 0, sizeof(c->http_addr));
	c->http_port = 0;
	if (c->http_listen[0] == '\0')
		return 0;
	if (hostport_parse(c->http_listen, &c->http_addr, &c->http_port) == -1 || c->http_port == 0) {
		snprintf(err, errlen, "http_listen \"%s\" is not ADDRESS:PORT or [IPV6]:PORT", c->http_listen);
		return -1;
	}
	loopback = (c->http_addr.family == AF_INET && c->http_addr.bytes[0] == 127) ||
	    (c->http_addr.family == AF_INET6 && memcmp(c->http_addr.bytes, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16) == 0);
	if (!loopback && !config_http_auth(c)) {
		snprintf(err, errlen, "http_listen %s is beyond loopback: set http_password_file or http_token_file "
		    "(or listen on 127.0.0.1)", c->http_listen);
		return -1;
	}
	if ((c->http_tls_cert_file[0] == '\0') != (c->http_tls_key_file[0] == '\0')) {
		snprintf(err, errlen, "http_tls_cert_file and http_tls_key_file must be set together");
		return -1;
	}
	return 0;
}

/*
 * config_finish - cross-key checks and derived defaults; key_line says where
 * each key was set (0 = default). need_tiers: at least one tier address
 * (what the daemon needs; a draft may have none yet).
 */
static int
config_finish(struct config *c, const char *name, const unsigned *key_line, bool need_tiers, char *err,
    size_t errlen)
{
	size_t tiers = 0;

	if (c->hostname[0] == '\0') {
		char host[256];

		if (gethostname(host, sizeof(host)) == -1 || !hostname_valid(host))
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		free(c->hostname);
		c->hostname = strdup(host);
		if (c->hostname == NULL)
			abort();
	}
	if (c->appliance_name[0] == '\0') {
		free(c->appliance_name);
		if ((c->appliance_name = strdup(c->hostname)) == NULL)
			abort();
	}
	for (int t = 0; t < TIER_COUNT; t++) {
		tiers += c->tier_ips[t].count;
		for (size_t i = 0; i < c->tier_ips[t].count; i++) {
			int other = config_tier_of(c, &c->tier_ips[t].items[i]);

			if (other != t) {
				char a[NETADDR_STRLEN], key[32];
				const struct config_key *k;

				snprintf(key, sizeof(key), "%s_ips", tier_role_name(t));
				k = config_key_find(key);
				snprintf(err, errlen, "%s:%u: %s: address %s is also in %s_ips", name,
				    k ? key_line[k - config_keys] : 0, key,
				    netaddr_format(&c->tier_ips[t].items[i], a, sizeof(a)), tier_role_name(other));
				return -1;
			}
		}
	}
	/* A backend at one of our own tier listeners is a relay loop: every session would come back to us. */
	for (int t = 0; t < TIER_COUNT; t++) {
		for (size_t i = 0; i < c->tier_ips[t].count; i++) {
			struct netaddr tier_addr = c->tier_ips[t].items[i], backend = c->backend_addr;
			const struct config_key *k = config_key_find("backend");
			char a[NETADDR_STRLEN];

			netaddr_normalize(&tier_addr);
			netaddr_normalize(&backend);
			if (c->backend_port != c->listen_port || !netaddr_equal(&tier_addr, &backend))
				continue;
			snprintf(err, errlen, "%s:%u: backend: %s port %u is mxtierd's own %s tier listener (a relay loop)",
			    name, k ? key_line[k - config_keys] : 0, netaddr_format(&backend, a, sizeof(a)),
			    (unsigned)c->backend_port, tier_role_name(t));
			return -1;
		}
	}
	if (c->dnsbl_reject_score < c->dnsbl_suspect_score) {
		snprintf(err, errlen, "dnsbl_reject_score (%lld) is below dnsbl_suspect_score (%lld)",
		    (long long)c->dnsbl_reject_score, (long long)c->dnsbl_suspect_score);
		return -1;
	}
	if (c->block_ttl_max < c->block_ttl) {
		snprintf(err, errlen, "block_ttl_max is below block_ttl");
		return -1;
	}
	if (c->dns_cache_max_ttl < c->dns_cache_min_ttl) {
		snprintf(err, errlen, "dns_cache_max_ttl is below dns_cache_min_ttl");
		return -1;
	}
	if (c->retry_min_delay >= c->retry_window) {
		snprintf(err, errlen, "retry_min_delay must be shorter than retry_window");
		return -1;
	}
	if (c->nft_table[0] == '\0' || strchr(c->nft_table, '.')) {
		snprintf(err, errlen, "nft_table must be a plain name like mxtier");
		return -1;
	}
	if (c->control_socket[0] != '\0' && (c->control_socket[0] != '/' || strlen(c->control_socket) > 100)) {
		snprintf(err, errlen, "control_socket must be an absolute path of at most 100 characters");
		return -1;
	}
	if (config_check_http(c, err, errlen) == -1)
		return -1;
	if (c->backend_source == BACKEND_FROM_CLIENT && !c->transparent) {
		snprintf(err, errlen, "backend_source = client needs transparent = yes");
		return -1;
	}
	if (tiers == 0 && need_tiers) {
		snprintf(err, errlen, "no tier addresses: set primary_ips, secondary_ips and/or bait_ips");
		return -1;
	}
	/* Last: certificates are read only for a config that is otherwise good. */
	{
		const char *tls_key = NULL;
		const struct config_key *k;
		char why[400];

		if (tls_config_load(c, &tls_key, why, sizeof(why)) == -1) {
			k = config_key_find(tls_key ? tls_key : "tls_cert_file");
			/* A certificate or key left unset has no line: name its partner, which was set. */
			if (k && key_line[k - config_keys] == 0 && strncmp(k->name, "tls_", 4) == 0)
				k = config_key_find(strcmp(k->name, "tls_cert_file") == 0 ? "tls_key_file" : "tls_cert_file");
			snprintf(err, errlen, "%s:%u: %s: %s", name, k ? key_line[k - config_keys] : 0, k ? k->name : "?", why);
			return -1;
		}
	}
	return 0;
}

/* config_parse - config_load_string, with or without the need for a tier address. */
static struct config *
config_parse(const char *name, const char *text, bool need_tiers, char *err, size_t errlen)
{
	struct config *c = config_new_defaults();
	unsigned key_line[CONFIG_KEY_COUNT] = { 0 };
	const char *p = text;
	unsigned lineno = 0;
	char problem[512];

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char line[4096];
		char *hash, *eq, *key, *value;
		const struct config_key *k;

		lineno++;
		if (len >= sizeof(line)) {
			size_t klen = strcspn(p, "= \t");

			snprintf(err, errlen, "%s:%u: %.*s: line too long (max %zu)", name, lineno,
			    (int)(klen > 64 ? 64 : klen), p, sizeof(line) - 1);
			goto fail;
		}
		memcpy(line, p, len);
		line[len] = '\0';
		p += len + (nl ? 1 : 0);

		if ((hash = strchr(line, '#')) != NULL)
			*hash = '\0';
		key = trim(line);
		if (*key == '\0')
			continue;
		if ((eq = strchr(key, '=')) == NULL) {
			snprintf(err, errlen, "%s:%u: %s: expected \"key = value\"", name, lineno, key);
			goto fail;
		}
		*eq = '\0';
		value = trim(eq + 1);
		key = trim(key);
		if ((k = config_key_find(key)) == NULL) {
			snprintf(err, errlen, "%s:%u: %s: unknown key", name, lineno, key);
			goto fail;
		}
		if (key_line[k - config_keys]) {
			snprintf(err, errlen, "%s:%u: %s: set twice (first on line %u)", name, lineno, key,
			    key_line[k - config_keys]);
			goto fail;
		}
		key_line[k - config_keys] = lineno;
		if (config_set(c, k, value, problem, sizeof(problem)) == -1) {
			snprintf(err, errlen, "%s:%u: %s: %s", name, lineno, key, problem);
			goto fail;
		}
	}
	if (config_finish(c, name, key_line, need_tiers, problem, sizeof(problem)) == -1) {
		/* Tier conflicts already carry FILE:LINE: key; other cross-key problems name the file. */
		if (strncmp(problem, name, strlen(name)) == 0)
			snprintf(err, errlen, "%s", problem);
		else
			snprintf(err, errlen, "%s: %s", name, problem);
		goto fail;
	}
	c->path = strdup(name);
	if (c->path == NULL)
		abort();
	return c;
fail:
	config_unref(c);
	return NULL;
}

struct config *
config_load_string(const char *name, const char *text, char *err, size_t errlen)
{
	return config_parse(name, text, true, err, errlen);
}

/* config_read - the file's text (at most 1 MiB, no NUL), to free; NULL with err set. */
static char *
config_read(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *text;
	long size;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) == -1 || (size = ftell(f)) < 0 || size > 1024 * 1024 ||
	    fseek(f, 0, SEEK_SET) == -1) {
		snprintf(err, errlen, "%s: unreadable or larger than 1 MiB", path);
		fclose(f);
		return NULL;
	}
	text = malloc((size_t)size + 1);
	if (text == NULL)
		abort();
	if (fread(text, 1, (size_t)size, f) != (size_t)size) {
		snprintf(err, errlen, "%s: read error", path);
		free(text);
		fclose(f);
		return NULL;
	}
	text[size] = '\0';
	fclose(f);
	if (strlen(text) != (size_t)size) {
		snprintf(err, errlen, "%s: contains a NUL byte", path);
		free(text);
		return NULL;
	}
	return text;
}

/* config_load_file - config_load, with or without the need for a tier address. */
static struct config *
config_load_file(const char *path, bool need_tiers, char *err, size_t errlen)
{
	char *text = config_read(path, err, errlen);
	struct config *c;

	if (text == NULL)
		return NULL;
	c = config_parse(path, text, need_tiers, err, errlen);
	free(text);
	return c;
}

struct config *
config_load(const char *path, char *err, size_t errlen)
{
	return config_load_file(path, true, err, errlen);
}

struct config *
config_load_draft(const char *path, char *err, size_t errlen)
{
	return config_load_file(path, false, err, errlen);
}

struct config *
config_ref(struct config *c)
{
	c->refcount++;
	return c;
}

void
config_unref(struct config *c)
{
	if (c == NULL || --c->refcount > 0)
		return;
	for (int t = 0; t < TIER_COUNT; t++)
		free(c->tier_ips[t].items);
	cidr_list_clear(&c->allow_networks);
	cidr_list_clear(&c->block_networks);
	free(c->hostname);
	free(c->path);
	free(c->nft_table);
	free(c->control_socket);
	free(c->user);
	free(c->database);
	free(c->appliance_name);
	tls_config_free(c);
	free(c->tls_cert_file);
	free(c->tls_key_file);
	free(c->backend_tls_ca_file);
	free(c->http_listen);
	free(c->http_tls_cert_file);
	free(c->http_tls_key_file);
	free(c->http_password_file);
	free(c->http_token_file);
	free(c->dashboard_dir);
	free(c->dashboard_database);
	string_list_clear(&c->dns_servers);
	string_list_clear(&c->trap_recipients);
	free(c->dnsbl_sites.items);
	pattern_list_clear(&c->dynamic_rdns_patterns);
	free(c->dynamic_ranges.path);
	cidr_list_clear(&c->dynamic_ranges.list);
	free(c);
}

int
config_check_user(const struct config *c, char *err, size_t errlen)
{
	struct passwd *pw;

	if (geteuid() != 0 || c->user[0] == '\0')
		return 0;
	if ((pw = getpwnam(c->user)) == NULL) {
		snprintf(err, errlen, "%s: user = %s: no such user; create it (packaging/install-deps does: "
		    "useradd --system ...) or set \"user =\" to run the SMTP engine as root", c->path, c->user);
		return -1;
	}
	if (pw->pw_uid == 0 || pw->pw_gid == 0) {
		snprintf(err, errlen, "%s: user = %s: is root or in group root; name an unprivileged user or set \"user =\"",
		    c->path, c->user);
		return -1;
	}
	return 0;
}

int
config_tier_of(const struct config *c, const struct netaddr *a)
{
	for (int t = 0; t < TIER_COUNT; t++)
		for (size_t i = 0; i < c->tier_ips[t].count; i++)
			if (netaddr_equal(&c->tier_ips[t].items[i], a))
				return t;
	return -1;
}

static void
print_duration(FILE *out, int64_t ms)
{
	if (ms == 0)
		fprintf(out, "0s");
	else if (ms % DAY == 0)
		fprintf(out, "%lldd", (long long)(ms / DAY));
	else if (ms % HOUR == 0)
		fprintf(out, "%lldh", (long long)(ms / HOUR));
	else if (ms % MIN == 0)
		fprintf(out, "%lldm", (long long)(ms / MIN));
	else if (ms % SEC == 0)
		fprintf(out, "%llds", (long long)(ms / SEC));
	else
		fprintf(out, "%lldms", (long long)ms);
}

void
config_print(const struct config *c, FILE *out)
{
	char a[NETADDR_STRLEN];

	for (size_t i = 0; i < CONFIG_KEY_COUNT; i++) {
		const struct config_key *k = &config_keys[i];
		const void *field = (const char *)c + k->offset;

		fprintf(out, "%s = ", k->name);
		switch (k->type) {
		case CT_INT:
			fprintf(out, "%lld", (long long)*(const int64_t *)field);
			break;
		case CT_DURATION:
			print_duration(out, *(const int64_t *)field);
			break;
		case CT_SIZE: {
			int64_t n = *(const int64_t *)field;

			if (n % GIB == 0)
				fprintf(out, "%lldg", (long long)(n / GIB));
			else if (n % MIB == 0)
				fprintf(out, "%lldm", (long long)(n / MIB));
			else if (n % KIB == 0)
				fprintf(out, "%lldk", (long long)(n / KIB));
			else
				fprintf(out, "%lld", (long long)n);
			break;
		}
		case CT_STRING:
		case CT_HOSTNAME: {
			const char *v = *(char *const *)field;
			const char *pw = strstr(v, "password=");

			/* Never print a database password: -n output ends up in tickets. */
			if (pw && (strcmp(k->name, "database") == 0 || strcmp(k->name, "dashboard_database") == 0))
				fprintf(out, "%.*spassword=*** (hidden)", (int)(pw - v), v);
			else
				fprintf(out, "%s", v);
			break;
		}
		case CT_ENUM:
			fprintf(out, "%s", k->enum_values[*(const int64_t *)field]);
			break;
		case CT_ADDR_LIST: {
			const struct addr_list *l = field;

			for (size_t j = 0; j < l->count; j++)
				fprintf(out, "%s%s", j ? ", " : "", netaddr_format(&l->items[j], a, sizeof(a)));
			break;
		}
		case CT_CIDR_LIST: {
			const struct cidr_list *l = field;

			for (size_t j = 0; j < l->count; j++)
				fprintf(out, "%s%s/%u", j ? ", " : "", netaddr_format(&l->items[j].addr, a, sizeof(a)),
				    l->items[j].prefix_len);
			break;
		}
		case CT_BOOL:
			fprintf(out, "%s", *(const int64_t *)field ? "yes" : "no");
			break;
		case CT_DECIMAL:
			fprintf(out, "%.2f", *(const int64_t *)field / 100.0);
			break;
		case CT_STRING_LIST:
		case CT_DNS_SERVERS: {
			const struct string_list *l = field;

			for (size_t j = 0; j < l->count; j++)
				fprintf(out, "%s%s", j ? ", " : "", l->items[j]);
			break;
		}
		case CT_DNSBL_LIST: {
			const struct dnsbl_list *l = field;

			for (size_t j = 0; j < l->count; j++) {
				const struct dnsbl_site *site = &l->items[j];

				fprintf(out, "%s%s", j ? ", " : "", site->zone);
				if (site->has_filter) {
					fputc('=', out);
					for (int o = 0; o < 4; o++) {
						bool first = true;

						fprintf(out, "%s[", o ? "." : "");
						for (unsigned v = 0; v < 256; v++)
							if (site->octet_set[o][v / 8] & (1u << (v % 8))) {
								fprintf(out, "%s%u", first ? "" : ";", v);
								first = false;
							}
						fputc(']', out);
					}
				}
				fprintf(out, "*%d", site->weight);
			}
			break;
		}
		case CT_PATTERNS_FILE: {
			const struct pattern_list *l = field;

			fprintf(out, "%s", l->path ? l->path : "");
			break;
		}
		case CT_CIDR_FILE: {
			const struct cidr_file *cf = field;

			fprintf(out, "%s", cf->path ? cf->path : "");
			break;
		}
		case CT_HOSTPORT:
			if (c->backend_addr.family == AF_INET6)
				fprintf(out, "[%s]:%u", netaddr_format(&c->backend_addr, a, sizeof(a)), c->backend_port);
			else
				fprintf(out, "%s:%u", netaddr_format(&c->backend_addr, a, sizeof(a)), c->backend_port);
			break;
		}
		fputc('\n', out);
	}
}
