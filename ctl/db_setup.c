/*
 * db_setup.c - `mxtierctl db setup`: the one command that gives an
 * appliance its database on the local PostgreSQL, and the migrations both
 * `db setup` and `db migrate` apply.
 *
 * The privileged parent of mxtierd holds the database connections (the
 * engine never sees the conninfo) and runs as root, so with peer
 * authentication over the unix socket its role is the OS account's name,
 * root by default. That role logs in and is granted mxtier_writer, nothing
 * more; the database and the tables belong to the superuser who ran the
 * migrations, so an upgrade's migrations run as that superuser again (the
 * package's postinst calls this command for the local database).
 */
#include "db_setup.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "migrations.h"

/* The local cluster's superuser over its socket (Debian: peer authentication). */
#define DB_SETUP_ADMIN		"host=/run/postgresql dbname=postgres user=postgres"
#define DB_SETUP_SUPERUSER	"postgres"	/* the account the work switches to when run as root */
#define DB_SETUP_DBNAME		"mxtier"
#define DB_SETUP_SOCKET_DIR	"/run/postgresql"	/* libpq's default on Debian */
#define DB_SETUP_PORT		"5432"
#define DB_SETUP_CONFIG_MAX	(1024 * 1024)	/* as mxtierd reads it */

struct db_setup_opts {
	const char	*admin;		/* the superuser's conninfo */
	const char	*role;		/* the daemon's login role */
	const char	*dbname;
};

/* command_ok - a result that succeeded; else print what PostgreSQL said. */
static bool
command_ok(PGconn *pg, PGresult *res, const char *what)
{
	ExecStatusType st = PQresultStatus(res);

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return true;
	fprintf(stderr, "mxtierctl: %s: %s", what, PQerrorMessage(pg));
	return false;
}

/* exec_ok - run one statement, true when it succeeded. */
static bool
exec_ok(PGconn *pg, const char *sql, const char *what)
{
	PGresult *res = PQexec(pg, sql);
	bool ok = command_ok(pg, res, what);

	PQclear(res);
	return ok;
}

int
ctl_db_apply_migrations(PGconn *pg)
{
	PGresult *res, *recorded;
	int applied = 0;

	/* "already exists, skipping" on every run is no news to an operator. */
	if (!exec_ok(pg, "SET client_min_messages = warning", "client_min_messages"))
		return -1;
	if (!exec_ok(pg, "CREATE TABLE IF NOT EXISTS mxtier_schema_migrations (version integer PRIMARY KEY, "
	    "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())", "schema version table"))
		return -1;
	/*
	 * Each migration by its own record, not "everything up to the highest":
	 * numbers are taken by parallel branches, so 0003 may be applied
	 * before a 0002 that was merged later, and 0002 must still run.
	 */
	recorded = PQexec(pg, "SELECT version FROM mxtier_schema_migrations");
	if (!command_ok(pg, recorded, "schema version")) {
		PQclear(recorded);
		return -1;
	}
	for (size_t i = 0; i < migration_count; i++) {
		const struct migration *m = &migrations[i];
		char version[16];
		const char *values[2] = { version, m->name };
		bool ok, have = false;

		for (int row = 0; row < PQntuples(recorded) && !have; row++)
			have = atoi(PQgetvalue(recorded, row, 0)) == m->version;
		if (have)
			continue;
		snprintf(version, sizeof(version), "%d", m->version);
		if (!exec_ok(pg, "BEGIN", "begin")) {
			PQclear(recorded);
			return -1;
		}
		ok = exec_ok(pg, m->sql, m->name);
		if (ok) {
			res = PQexecParams(pg, "INSERT INTO mxtier_schema_migrations (version, name) VALUES ($1::integer, $2)",
			    2, NULL, values, NULL, NULL, 0);
			ok = command_ok(pg, res, "recording the migration");
			PQclear(res);
		}
		if (!ok || !exec_ok(pg, "COMMIT", "commit")) {
			fprintf(stderr, "mxtierctl: migration %s failed and was rolled back\n", m->name);
			PQclear(PQexec(pg, "ROLLBACK"));
			PQclear(recorded);
			return -1;
		}
		printf("applied %s\n", m->name);
		applied++;
	}
	PQclear(recorded);
	printf("schema at version %d (%d applied)\n", migration_count ? migrations[migration_count - 1].version : 0,
	    applied);
	return 0;
}

/* admin_connect - the superuser's connection, to dbname instead of the one its conninfo names (NULL: that one). */
static PGconn *
admin_connect(const char *admin, const char *dbname)
{
	/* Only the first dbname is expanded as a conninfo; the second overrides its database. */
	const char *keys[] = { "dbname", "application_name", dbname ? "dbname" : NULL, NULL };
	const char *values[] = { admin, "mxtierctl db setup", dbname, NULL };
	PGconn *pg = PQconnectdbParams(keys, values, 1);

	if (PQstatus(pg) != CONNECTION_OK) {
		fprintf(stderr, "mxtierctl: PostgreSQL (%s%s%s): %s", admin, dbname ? ", database " : "", dbname ? dbname : "",
		    PQerrorMessage(pg));
		PQfinish(pg);
		return NULL;
	}
	return pg;
}

/* exists - whether the one-parameter query finds a row; -1 on error. */
static int
exists(PGconn *pg, const char *sql, const char *name)
{
	PGresult *res = PQexecParams(pg, sql, 1, NULL, &name, NULL, NULL, 0);
	int found = command_ok(pg, res, "lookup") ? PQntuples(res) > 0 : -1;

	PQclear(res);
	return found;
}

/* ensure - CREATE what (ROLE x LOGIN, DATABASE x) unless the lookup finds it; 0 or -1. */
static int
ensure(PGconn *pg, const char *lookup, const char *what, const char *name, const char *suffix)
{
	char *id, sql[512];
	int found = exists(pg, lookup, name);

	if (found != 0)
		return found == 1 ? 0 : -1;
	if ((id = PQescapeIdentifier(pg, name, strlen(name))) == NULL) {
		fprintf(stderr, "mxtierctl: %s: %s", name, PQerrorMessage(pg));
		return -1;
	}
	snprintf(sql, sizeof(sql), "CREATE %s %s%s", what, id, suffix);
	PQfreemem(id);
	if (!exec_ok(pg, sql, what))
		return -1;
	printf("created %s %s\n", what[0] == 'R' ? "role" : "database", name);
	return 0;
}

/* setup_database - the role, the database, the migrations, the grant: idempotent. */
static int
setup_database(const struct db_setup_opts *o)
{
	static const char member_sql[] = "SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
	    "JOIN pg_roles g ON g.oid = m.roleid WHERE r.rolname = $1 AND g.rolname = 'mxtier_writer'";
	PGconn *pg = admin_connect(o->admin, NULL);
	char *id, sql[512];
	int rc = -1, member;

	if (pg == NULL)
		return -1;
	if (ensure(pg, "SELECT 1 FROM pg_roles WHERE rolname = $1", "ROLE", o->role, " LOGIN") == -1 ||
	    ensure(pg, "SELECT 1 FROM pg_database WHERE datname = $1", "DATABASE", o->dbname, "") == -1) {
		PQfinish(pg);
		return -1;
	}
	PQfinish(pg);
	if ((pg = admin_connect(o->admin, o->dbname)) == NULL)
		return -1;
	/* The first migration creates mxtier_writer; only then can the role join it. */
	if (ctl_db_apply_migrations(pg) == -1 || (member = exists(pg, member_sql, o->role)) == -1)
		goto out;
	if (member == 0) {
		if ((id = PQescapeIdentifier(pg, o->role, strlen(o->role))) == NULL)
			goto out;
		snprintf(sql, sizeof(sql), "GRANT mxtier_writer TO %s", id);
		PQfreemem(id);
		if (!exec_ok(pg, sql, "grant"))
			goto out;
		printf("granted mxtier_writer to %s\n", o->role);
	}
	rc = 0;
out:
	PQfinish(pg);
	return rc;
}

/*
 * setup_as_superuser - run as root, the work is done by a child that is
 * the postgres account, which peer authentication lets in as the
 * superuser; the parent stays root to edit the config file afterwards.
 */
static int
setup_as_superuser(const struct db_setup_opts *o)
{
	struct passwd *pw;
	pid_t pid;
	int status;

	if (geteuid() != 0)
		return setup_database(o);
	if ((pw = getpwnam(DB_SETUP_SUPERUSER)) == NULL) {
		fprintf(stderr, "mxtierctl: no %s account (is PostgreSQL installed?); or give --admin CONNINFO\n",
		    DB_SETUP_SUPERUSER);
		return -1;
	}
	fflush(stdout);
	if ((pid = fork()) == -1) {
		fprintf(stderr, "mxtierctl: fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		if (setgroups(0, NULL) == -1 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == -1 ||
		    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1) {
			fprintf(stderr, "mxtierctl: cannot become %s: %s\n", DB_SETUP_SUPERUSER, strerror(errno));
			_exit(1);
		}
		/* The working directory may be one postgres cannot read; libpq does not need it. */
		if (chdir("/") == -1)
			_exit(1);
		status = setup_database(o);
		/* _exit skips stdio's flush, and stdout may be a pipe. */
		fflush(stdout);
		_exit(status == 0 ? 0 : 1);
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* append_param - " key=value" to buf, the value quoted when it needs it (libpq's conninfo syntax). */
static void
append_param(char *buf, size_t len, const char *key, const char *value)
{
	size_t o = strlen(buf);
	bool quote = value[0] == '\0' || strpbrk(value, " \t'\\") != NULL;

	o += (size_t)snprintf(buf + o, o < len ? len - o : 0, "%s%s=%s", o ? " " : "", key, quote ? "'" : "");
	for (const char *p = value; *p && o + 3 < len; p++) {
		if (*p == '\'' || *p == '\\')
			buf[o++] = '\\';
		buf[o++] = *p;
	}
	if (o + 2 < len && quote)
		buf[o++] = '\'';
	buf[o < len ? o : len - 1] = '\0';
}

/* database_value - the conninfo mxtierd will use: the admin's socket and port, our database and role. */
static int
database_value(const struct db_setup_opts *o, char *buf, size_t len)
{
	PQconninfoOption *opts = PQconninfoParse(o->admin, NULL);
	const char *host = DB_SETUP_SOCKET_DIR, *port = DB_SETUP_PORT;
	struct passwd *pw = getpwuid(geteuid());

	if (opts == NULL)
		return -1;
	for (PQconninfoOption *p = opts; p->keyword; p++) {
		if (p->val && p->val[0] && strcmp(p->keyword, "host") == 0)
			host = p->val;
		if (p->val && p->val[0] && strcmp(p->keyword, "port") == 0)
			port = p->val;
	}
	buf[0] = '\0';
	append_param(buf, len, "host", host);
	if (strcmp(port, DB_SETUP_PORT) != 0)
		append_param(buf, len, "port", port);
	append_param(buf, len, "dbname", o->dbname);
	/* Peer authentication's default role is the account's own name: say the role only when it differs. */
	if (pw == NULL || strcmp(pw->pw_name, o->role) != 0)
		append_param(buf, len, "user", o->role);
	PQconninfoFree(opts);
	return 0;
}

/* database_line - the line of text that holds the database key (set, else commented out); NULL if none. */
static char *
database_line(char *text, char **end)
{
	char *commented = NULL, *commented_end = NULL;

	for (char *line = text; *line; ) {
		char *nl = strchr(line, '\n'), *next = nl ? nl + 1 : line + strlen(line), *p = line;
		bool hash = false;

		p += strspn(p, " \t");
		if (*p == '#') {
			hash = true;
			p++;
			p += strspn(p, " \t");
		}
		if (strncmp(p, "database", 8) == 0 && p[8 + strspn(p + 8, " \t")] == '=') {
			if (!hash) {
				*end = next;
				return line;
			}
			if (commented == NULL) {
				commented = line;
				commented_end = next;
			}
		}
		line = next;
	}
	*end = commented_end;
	return commented;
}

/*
 * config_set_database - "database = value" in place of the file's database
 * line (or its commented default), every other byte kept; appended when
 * there is none. Written to a temp file beside it, then renamed over it.
 */
static int
config_set_database(const char *path, const char *value)
{
	char tmp[4096], *text = NULL, *line, *end;
	struct stat st;
	size_t got = 0;
	FILE *in = NULL, *out = NULL;
	int fd = -1, rc = -1;
	bool created = false;

	if ((in = fopen(path, "r")) == NULL || fstat(fileno(in), &st) == -1 || st.st_size > DB_SETUP_CONFIG_MAX)
		goto fail;
	if ((text = calloc(1, (size_t)st.st_size + 1)) == NULL)
		abort();
	got = fread(text, 1, (size_t)st.st_size, in);
	text[got] = '\0';
	snprintf(tmp, sizeof(tmp), "%s.mxtierctl-XXXXXX", path);
	if ((fd = mkstemp(tmp)) == -1 || !(created = true) || fchmod(fd, st.st_mode & 07777) == -1 ||
	    (geteuid() == 0 && fchown(fd, st.st_uid, st.st_gid) == -1) || (out = fdopen(fd, "w")) == NULL)
		goto fail;
	fd = -1;
	if ((line = database_line(text, &end)) != NULL)
		fprintf(out, "%.*sdatabase = %s\n%s", (int)(line - text), text, value, end);
	else
		fprintf(out, "%s%sdatabase = %s\n", text, got && text[got - 1] != '\n' ? "\n" : "", value);
	if (fflush(out) == EOF || fsync(fileno(out)) == -1)
		goto fail;
	if (fclose(out) == EOF) {
		out = NULL;
		goto fail;
	}
	out = NULL;
	if (rename(tmp, path) == -1)
		goto fail;
	created = false;
	rc = 0;
fail:
	if (rc == -1)
		fprintf(stderr, "mxtierctl: cannot set database in %s: %s\n", path, strerror(errno));
	if (out)
		fclose(out);
	if (fd >= 0)
		close(fd);
	if (created)
		unlink(tmp);
	if (in)
		fclose(in);
	free(text);
	return rc;
}

int
ctl_db_setup(const char *path, const struct config *c, int argc, char **argv)
{
	struct passwd *pw = getpwuid(geteuid());
	struct db_setup_opts o = { DB_SETUP_ADMIN, pw ? pw->pw_name : "root", DB_SETUP_DBNAME };
	char value[1024];

	for (int i = 0; i < argc; i += 2) {
		const char **slot = strcmp(argv[i], "--admin") == 0 ? &o.admin : strcmp(argv[i], "--role") == 0 ?
		    &o.role : strcmp(argv[i], "--dbname") == 0 ? &o.dbname : NULL;

		if (slot == NULL || i + 1 >= argc || argv[i + 1][0] == '\0') {
			fprintf(stderr, "usage: mxtierctl db setup [--admin CONNINFO] [--role NAME] [--dbname NAME]\n");
			return 2;
		}
		*slot = argv[i + 1];
	}
	if (setup_as_superuser(&o) == -1) {
		fprintf(stderr, "mxtierctl: database setup failed; nothing in %s was changed\n", path);
		return 1;
	}
	if (c->database[0] != '\0') {
		printf("%s: database is already set; left as it is\n", path);
		return 0;
	}
	if (database_value(&o, value, sizeof(value)) == -1 || config_set_database(path, value) == -1)
		return 1;
	printf("%s: database = %s\nrestart mxtierd to use it: systemctl restart mxtier\n", path, value);
	return 0;
}
