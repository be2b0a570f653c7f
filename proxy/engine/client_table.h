#ifndef MXTIER_CLIENT_TABLE_H
#define MXTIER_CLIENT_TABLE_H

#include <stddef.h>

#include "netaddr.h"

/* Sessions per client key (IPv4 address or IPv6 /64); entries live while count > 0. */
struct client_table;

struct client_table	*client_table_new(void);
void			 client_table_free(struct client_table *t);
/* client_table_add - count one more session for key; returns the new count. */
size_t			 client_table_add(struct client_table *t, const struct netaddr *key);
void			 client_table_remove(struct client_table *t, const struct netaddr *key);

#endif
