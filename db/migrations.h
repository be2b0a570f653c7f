#ifndef MXTIER_MIGRATIONS_H
#define MXTIER_MIGRATIONS_H

#include <stddef.h>

/* The forward-only schema migrations, embedded at build time (db/embed-migrations). */
struct migration {
	int		 version;
	const char	*name;
	const char	*sql;
};

extern const struct migration migrations[];
extern const size_t migration_count;

#endif
