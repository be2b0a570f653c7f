#ifndef MXTIER_DB_SETUP_H
#define MXTIER_DB_SETUP_H

#include <libpq-fe.h>

#include "config.h"

/*
 * ctl_db_apply_migrations - the embedded migrations the database behind pg
 * has not recorded yet, each in its own transaction; prints what it
 * applied. 0, or -1 after printing why (the failed one rolled back).
 */
int	ctl_db_apply_migrations(PGconn *pg);

/*
 * ctl_db_setup - `mxtierctl db setup [--admin CONNINFO] [--role NAME]
 * [--dbname NAME]`: as the PostgreSQL superuser, the login role, the
 * database, the migrations and the grant; then the config file's database
 * key when it is empty. argv holds the options only. Exit status.
 */
int	ctl_db_setup(const char *path, const struct config *c, int argc, char **argv);

#endif
