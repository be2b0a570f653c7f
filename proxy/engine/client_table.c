#include "client_table.h"
#include "hash.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CLIENT_TABLE_BUCKETS 4096	/* power of two; chains stay short at max_sessions */

struct client_entry {
	struct client_entry	*next;
	struct netaddr		 key;
	size_t			 count;
};

struct client_table {
	struct client_entry	*buckets[CLIENT_TABLE_BUCKETS];
};

static size_t
client_hash(const struct netaddr *key)
{
	return hash_fnv1a(key->bytes, key->family == AF_INET ? 4 : 16) & (CLIENT_TABLE_BUCKETS - 1);
}

struct client_table *
client_table_new(void)
{
	struct client_table *t = calloc(1, sizeof(*t));

	if (t == NULL)
		abort();
	return t;
}

void
client_table_free(struct client_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < CLIENT_TABLE_BUCKETS; i++) {
		struct client_entry *e = t->buckets[i];

		while (e) {
			struct client_entry *next = e->next;

			free(e);
			e = next;
		}
	}
	free(t);
}

size_t
client_table_add(struct client_table *t, const struct netaddr *key)
{
	size_t h = client_hash(key);
	struct client_entry *e;

	for (e = t->buckets[h]; e; e = e->next)
		if (netaddr_equal(&e->key, key))
			return ++e->count;
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		abort();
	e->key = *key;
	e->count = 1;
	e->next = t->buckets[h];
	t->buckets[h] = e;
	return 1;
}

void
client_table_remove(struct client_table *t, const struct netaddr *key)
{
	struct client_entry **link = &t->buckets[client_hash(key)];

	for (; *link; link = &(*link)->next) {
		struct client_entry *e = *link;

		if (!netaddr_equal(&e->key, key))
			continue;
		if (--e->count == 0) {
			*link = e->next;
			free(e);
		}
		return;
	}
}
