/*
 * ctl_db.c - mxtierctl's database commands: db migrate, why, rep, and the
 * block/allow listings every appliance sharing the database follows.
 */
#include "ctl.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_setup.h"

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
int
ctl_listing_change(const struct config *c, int argc, char **argv)
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

/* ctl_cmd_db - "db migrate". */
int
ctl_cmd_db(const struct config *c, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "setup") == 0)
		return ctl_db_setup(c->path, c, argc - 2, argv + 2);
	if (argc < 2 || strcmp(argv[1], "migrate") != 0) {
		fprintf(stderr, "mxtierctl: usage: db migrate | db setup [--admin CONNINFO] [--role NAME] [--dbname NAME]\n");
		return 2;
	}
	return db_migrate(c);
}

/* ctl_cmd_why - "why ADDRESS" and "rep ADDRESS". */
int
ctl_cmd_why(const struct config *c, int argc, char **argv)
{
	return db_why_rep(c, argv[0][0] == 'w', argc > 1 ? argv[1] : NULL);
}
