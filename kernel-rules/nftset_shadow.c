/*
 * nftset_shadow.c - the shadow table of the kernel set writer: every
 * element mxtierd asked for, what it wants (present until an expiry, or
 * absent) and what the kernel may hold, in a bounded hash of fixed entries
 * (NFTSET_QUEUE_MAX, keyed with a random seed). A change marks its entry
 * dirty: the FIFO of dirty entries is the writer's queue, so changes to one
 * element coalesce and the queue can never outgrow the table.
 */
#include "nftset_internal.h"

#include <string.h>

static uint32_t
shadow_hash(const struct nftset *ns, unsigned set, const uint8_t *key)
{
	uint64_t h = ns->hash_seed ^ 0xcbf29ce484222325ULL;

	h = (h ^ set) * 0x100000001b3ULL;
	for (unsigned i = 0; i < 16; i++)
		h = (h ^ key[i]) * 0x100000001b3ULL;
	h ^= h >> 29;
	return (uint32_t)h & (NFTSET_QUEUE_MAX - 1);
}

struct shadow_entry *
nftset_shadow_find(struct nftset *ns, unsigned set, const uint8_t *key)
{
	for (uint32_t i = ns->buckets[shadow_hash(ns, set, key)]; i != SHADOW_NONE; i = ns->entries[i].hash_next) {
		struct shadow_entry *e = &ns->entries[i];

		if (e->set == set && memcmp(e->key, key, 16) == 0)
			return e;
	}
	return NULL;
}

static void
shadow_free(struct nftset *ns, struct shadow_entry *e)
{
	uint32_t idx = (uint32_t)(e - ns->entries);
	uint32_t *p = &ns->buckets[shadow_hash(ns, e->set, e->key)];

	while (*p != idx)
		p = &ns->entries[*p].hash_next;
	*p = e->hash_next;
	memset(e, 0, sizeof(*e));
	e->hash_next = ns->free_head;
	ns->free_head = idx;
	ns->in_use--;
}

/* nftset_shadow_settle - free an entry nobody needs any more: nothing wanted, nothing in the kernel, nothing pending. */
void
nftset_shadow_settle(struct nftset *ns, struct shadow_entry *e, int64_t now)
{
	if (e->in_use && !e->dirty && !e->in_flight && !entry_want_now(e, now) && !entry_kernel_live(e, now))
		shadow_free(ns, e);
}

/* nftset_shadow_sweep - free every settled entry (expired elements), at most once a second unless forced. */
void
nftset_shadow_sweep(struct nftset *ns, bool force)
{
	int64_t now = nftset_now_ms();

	if (!force && now - ns->last_sweep < 1000)
		return;
	ns->last_sweep = now;
	for (uint32_t i = 0; i < ns->never_used; i++)
		nftset_shadow_settle(ns, &ns->entries[i], now);
}

/* nftset_shadow_get - the entry for a key, created if new; NULL when the table is full. */
struct shadow_entry *
nftset_shadow_get(struct nftset *ns, unsigned set, const uint8_t *key)
{
	struct shadow_entry *e = nftset_shadow_find(ns, set, key);
	uint32_t idx, b;

	if (e != NULL)
		return e;
	if (ns->free_head == SHADOW_NONE && ns->never_used == NFTSET_QUEUE_MAX)
		nftset_shadow_sweep(ns, false);
	if (ns->free_head != SHADOW_NONE) {
		idx = ns->free_head;
		ns->free_head = ns->entries[idx].hash_next;
	} else if (ns->never_used < NFTSET_QUEUE_MAX) {
		idx = ns->never_used++;
	} else {
		return NULL;
	}
	e = &ns->entries[idx];
	memset(e, 0, sizeof(*e));
	memcpy(e->key, key, 16);
	e->set = (uint8_t)set;
	e->in_use = true;
	e->dirty_next = SHADOW_NONE;
	b = shadow_hash(ns, set, key);
	e->hash_next = ns->buckets[b];
	ns->buckets[b] = idx;
	ns->in_use++;
	return e;
}

/*
 * nftset_entry_mark_dirty - put an entry on the write FIFO (once). True if
 * it went on just now: the writer then arms its batching timer (the shadow
 * table knows nothing of the event loop).
 */
bool
nftset_entry_mark_dirty(struct nftset *ns, struct shadow_entry *e)
{
	uint32_t idx = (uint32_t)(e - ns->entries);

	if (e->dirty)
		return false;
	e->dirty = true;
	e->dirty_next = SHADOW_NONE;
	if (ns->dirty_tail == SHADOW_NONE)
		ns->dirty_head = idx;
	else
		ns->entries[ns->dirty_tail].dirty_next = idx;
	ns->dirty_tail = idx;
	ns->ndirty++;
	return true;
}

/* nftset_dirty_pop - the oldest dirty entry, off the FIFO; NULL if none. */
struct shadow_entry *
nftset_dirty_pop(struct nftset *ns)
{
	struct shadow_entry *e;

	if (ns->dirty_head == SHADOW_NONE)
		return NULL;
	e = &ns->entries[ns->dirty_head];
	ns->dirty_head = e->dirty_next;
	if (ns->dirty_head == SHADOW_NONE)
		ns->dirty_tail = SHADOW_NONE;
	e->dirty = false;
	e->dirty_next = SHADOW_NONE;
	ns->ndirty--;
	return e;
}
