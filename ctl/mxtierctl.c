/*
 * mxtierctl - the operator's tool.
 *   check | config            the configuration file
 *   rules [--routing]         the nftables ruleset (and TPROXY routing) for it
 *   status                    counters of the running daemon
 *   block add|del|list ...    listings in the running daemon (and its kernel sets)
 *   allow add|del|list ...
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <stdlib.h>

#include "config.h"
#include "db_setup.h"
#include "ruleset.h"

static int
usage(void)
{
	fprintf(stderr, "usage: mxtierctl [-c FILE] COMMAND\n"
	    "commands:\n"
	    "  check                        check the configuration file\n"
	    "  config                       print the effective settings\n"
	    "  rules [--routing]            print the nftables ruleset (--routing: TPROXY policy routing)\n"
	    "  status                       counters of the running mxtierd\n"
	    "  block add ADDRESS [TTL]      refuse a client (and drop it in the kernel)\n"
	    "  block del ADDRESS | block list\n"
	    "  allow add ADDRESS [TTL]      fast-track a client at every tier\n"
	    "  allow del ADDRESS | allow list\n"
	    "  db migrate                   create or upgrade the database schema\n"
	    "  db setup [--admin CONNINFO] [--role NAME] [--dbname NAME]\n"
	    "                               the local PostgreSQL: role, database, schema, config\n"
	    "  why ADDRESS                  recent verdicts, reputation and listings of a client\n"
	    "  rep ADDRESS                  reputation rows of a client, its prefix and domains\n");
	return 2;
}

static PGconn *
db_connect(const struct config *c)
{
	PGconn *pg;

	if (c->database[0] == '\0') {
		fprintf(stderr, "mxtierctl: database is not set in %s\n", c->path);
		return NULL;
	}
	pg = PQconnectdb(c->database);
	if (PQstatus(pg) != CONNECTION_OK) {
		fprintf(stderr, "mxtierctl: database: %s", PQerrorMessage(pg));
		PQfinish(pg);
		return NULL;
	}
	return pg;
}

/* db_migrate - apply the embedded migrations not yet recorded, as the configured role. */
static int
db_migrate(const struct config *c)
{
	PGconn *pg = db_connect(c);
	int rc;

	if (pg == NULL)
		return 1;
	rc = ctl_db_apply_migrations(pg) == 0 ? 0 : 1;
	PQfinish(pg);
	return rc;
}

/* print_query - run one parameterised query and print its rows as "col=value" lines. */
static int
print_query(PGconn *pg, const char *title, const char *sql, int n, const char *const *values)
{
	PGresult *res = PQexecParams(pg, sql, n, NULL, values, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "mxtierctl: %s: %s", title, PQerrorMessage(pg));
		PQclear(res);
		return 1;
	}
	printf("%s (%d)\n", title, PQntuples(res));
	for (int r = 0; r < PQntuples(res); r++) {
		printf("  ");
		for (int f = 0; f < PQnfields(res); f++)
			printf("%s%s=%s", f ? " " : "", PQfname(res, f), PQgetisnull(res, r, f) ? "-" : PQgetvalue(res, r, f));
		printf("\n");
	}
	PQclear(res);
	return 0;
}

static int
db_why_rep(const struct config *c, bool why, const char *addr_text)
{
	struct netaddr a;
	PGconn *pg;
	const char *values[1] = { addr_text };
	int rc = 0;

	if (addr_text == NULL || netaddr_parse(addr_text, &a) == -1) {
		fprintf(stderr, "mxtierctl: expected an IPv4 or IPv6 address\n");
		return 2;
	}
	if ((pg = db_connect(c)) == NULL)
		return 1;
	if (why)
		rc |= print_query(pg, "recent sessions",
		    "SELECT started_at, appliance, tier, verdict, array_to_string(reasons, ',') AS reasons, rdns, helo, "
		    "mail_from, rcpt_count, backend_reply FROM sessions WHERE client = $1::inet "
		    "ORDER BY started_at DESC LIMIT 20", 1, values);
	rc |= print_query(pg, "reputation",
	    "SELECT kind, key, score, sessions, relayed, tempfailed, retried, hit_and_run, bait_first, trapped, rejected, "
	    "first_seen, last_seen FROM reputation WHERE (kind = 'address' AND key = host($1::inet)) "
	    "OR (kind = 'prefix' AND key = network(set_masklen($1::inet, CASE WHEN family($1::inet) = 4 THEN 24 ELSE 64 END))::text) "
	    "OR (kind = 'rdns_domain' AND key IN (SELECT lower(rdns) FROM sessions WHERE client = $1::inet AND fcrdns)) "
	    "ORDER BY kind", 1, values);
	if (why) {
		rc |= print_query(pg, "contacts (shared history)",
		    "SELECT key, last_primary, last_secondary, last_bait, pending_since, pass_until, block_until, block_reason "
		    "FROM contacts WHERE key IN ('a:' || host($1::inet), 'p:' || network(set_masklen($1::inet, "
		    "CASE WHEN family($1::inet) = 4 THEN 24 ELSE 64 END))::text)", 1, values);
		rc |= print_query(pg, "listings",
		    "SELECT network, kind, reason, expires_at, set_by FROM listings WHERE network >>= $1::inet "
		    "AND (expires_at IS NULL OR expires_at > now())", 1, values);
	}
	PQfinish(pg);
	return rc;
}

/* db_listing_change - block/allow add|del in the database, seen by every appliance through NOTIFY. */
static int
db_listing_change(const struct config *c, int argc, char **argv)
{
	const char *kind = argv[0], *verb = argv[1], *addr = argc > 2 ? argv[2] : NULL;
	char ttl_seconds[32];
	int64_t ttl = strcmp(kind, "block") == 0 ? c->block_ttl : c->pass_ttl;
	const char *values[3] = { addr, kind, ttl_seconds };
	struct cidr net;
	PGconn *pg;
	PGresult *res;

	if (strcmp(verb, "list") == 0) {
		if ((pg = db_connect(c)) == NULL)
			return 1;
		print_query(pg, "listings", "SELECT network, reason, expires_at, set_by FROM listings WHERE kind = $1 "
		    "AND (expires_at IS NULL OR expires_at > now()) ORDER BY network", 1, (const char *const *)&values[1]);
		PQfinish(pg);
		return 0;
	}
	if (addr == NULL || cidr_parse(addr, &net) == -1) {
		fprintf(stderr, "mxtierctl: expected an address or network\n");
		return 2;
	}
	if (argc > 3 && (config_parse_duration(argv[3], &ttl) == -1 || ttl <= 0)) {
		fprintf(stderr, "mxtierctl: bad TTL \"%s\"\n", argv[3]);
		return 2;
	}
	snprintf(ttl_seconds, sizeof(ttl_seconds), "%lld", (long long)(ttl / 1000));
	if ((pg = db_connect(c)) == NULL)
		return 1;
	if (strcmp(verb, "add") == 0)
		res = PQexecParams(pg, "INSERT INTO listings (network, kind, reason, expires_at) VALUES ($1::cidr, $2, "
		    "'manual', now() + make_interval(secs => $3::integer))", 3, NULL, values, NULL, NULL, 0);
	else
		res = PQexecParams(pg, "DELETE FROM listings WHERE network = $1::cidr AND kind = $2", 2, NULL, values, NULL,
		    NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		fprintf(stderr, "mxtierctl: database: %s", PQerrorMessage(pg));
		PQclear(res);
		PQfinish(pg);
		return 1;
	}
	printf("ok (database: %s row%s)\n", PQcmdTuples(res), strcmp(PQcmdTuples(res), "1") ? "s" : "");
	PQclear(res);
	PQfinish(pg);
	return 0;
}

/* control_request - send one request line to the daemon, print its reply; 0 when it said "ok". */
static int
control_request(const struct config *c, int argc, char **argv)
{
	struct sockaddr_un sun;
	char request[512] = "", reply[4096];
	size_t used = 0;
	ssize_t n;
	int fd, rc = 1, first = 1;

	if (c->control_socket[0] == '\0') {
		fprintf(stderr, "mxtierctl: control_socket is not set in %s\n", c->path);
		return 1;
	}
	for (int i = 0; i < argc; i++)
		used += (size_t)snprintf(request + used, sizeof(request) - used, "%s%s", i ? " " : "", argv[i]);
	if (used + 2 >= sizeof(request)) {
		fprintf(stderr, "mxtierctl: request too long\n");
		return 1;
	}
	strcat(request, "\n");
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", c->control_socket);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		fprintf(stderr, "mxtierctl: cannot reach mxtierd at %s: %s\n", c->control_socket, strerror(errno));
		if (fd != -1)
			close(fd);
		return 1;
	}
	/* The daemon that answers is the unprivileged engine: never wait for it for ever. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){ .tv_sec = 10 }, sizeof(struct timeval));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &(struct timeval){ .tv_sec = 10 }, sizeof(struct timeval));
	if (write(fd, request, strlen(request)) != (ssize_t)strlen(request)) {
		fprintf(stderr, "mxtierctl: write: %s\n", strerror(errno));
		close(fd);
		return 1;
	}
	while ((n = read(fd, reply, sizeof(reply) - 1)) > 0) {
		reply[n] = '\0';
		/* Nor let it write terminal escapes to an operator's screen. */
		for (ssize_t i = 0; i < n; i++)
			if (((unsigned char)reply[i] < 0x20 && reply[i] != '\n' && reply[i] != '\t') || reply[i] == 0x7f)
				reply[i] = '?';
		if (first) {
			rc = strncmp(reply, "ok", 2) == 0 ? 0 : 1;
			first = 0;
		}
		fputs(reply, rc == 0 ? stdout : stderr);
	}
	if (n == -1) {
		fprintf(stderr, "mxtierctl: no complete answer from mxtierd: %s\n", strerror(errno));
		rc = 1;
	}
	close(fd);
	return rc;
}

int
main(int argc, char **argv)
{
	const char *path = MXTIER_CONFIG_PATH;
	const char *cmd;
	struct config *c;
	char err[1024];
	int ch, rc = 0;

	while ((ch = getopt(argc, argv, "+c:h")) != -1) {
		if (ch == 'c')
			path = optarg;
		else
			return usage();
	}
	if (optind >= argc)
		return usage();
	cmd = argv[optind];
	if (strcmp(cmd, "check") && strcmp(cmd, "config") && strcmp(cmd, "rules") && strcmp(cmd, "status") &&
	    strcmp(cmd, "block") && strcmp(cmd, "allow") && strcmp(cmd, "db") && strcmp(cmd, "why") &&
	    strcmp(cmd, "rep")) {
		fprintf(stderr, "mxtierctl: %s: unknown command\n", cmd);
		return usage();
	}
	c = config_load(path, err, sizeof(err));
	if (c == NULL) {
		fprintf(stderr, "mxtierctl: %s\n", err);
		return 1;
	}
	if (strcmp(cmd, "config") == 0) {
		config_print(c, stdout);
	} else if (strcmp(cmd, "check") == 0) {
		printf("%s: configuration ok\n", path);
	} else if (strcmp(cmd, "rules") == 0) {
		if (optind + 1 < argc && strcmp(argv[optind + 1], "--routing") == 0)
			ruleset_print_routing(stdout);
		else
			ruleset_print(c, stdout);
	} else if (strcmp(cmd, "db") == 0) {
		if (optind + 1 < argc && strcmp(argv[optind + 1], "setup") == 0) {
			rc = ctl_db_setup(path, c, argc - optind - 2, argv + optind + 2);
		} else if (optind + 1 >= argc || strcmp(argv[optind + 1], "migrate") != 0) {
			config_unref(c);
			return usage();
		} else {
			rc = db_migrate(c);
		}
	} else if (strcmp(cmd, "why") == 0 || strcmp(cmd, "rep") == 0) {
		rc = db_why_rep(c, cmd[0] == 'w', optind + 1 < argc ? argv[optind + 1] : NULL);
	} else {
		if ((strcmp(cmd, "block") == 0 || strcmp(cmd, "allow") == 0) && optind + 1 >= argc) {
			config_unref(c);
			return usage();
		}
		/*
		 * With a database the listing goes there, for every appliance (they
		 * follow it by NOTIFY); the local daemon is told directly as well.
		 */
		if (c->database[0] != '\0' && strcmp(cmd, "status") != 0) {
			rc = db_listing_change(c, argc - optind, argv + optind);
			if (rc == 0 && c->control_socket[0] != '\0' && strcmp(argv[optind + 1], "list") != 0)
				(void)control_request(c, argc - optind, argv + optind);
		} else {
			rc = control_request(c, argc - optind, argv + optind);
		}
	}
	config_unref(c);
	return rc;
}
