/*
 * nftset.c - the kernel set writer: block/trust elements of `table inet
 * <table>` written in ACK-checked netlink batches from the event loop.
 *
 * Every element mxtierd asked for lives in a bounded shadow table (hash of
 * fixed entries): what it wants (present until an expiry, or absent) and
 * what the kernel may hold. A change marks the entry dirty; a short timer
 * (or nftset_flush) turns the dirty entries into one transaction
 * (BEGIN ... END, NLM_F_ACK on every message, at most NFTSET_MSG_ELEMS
 * elements per message) and only one transaction is in flight at a time, so
 * each entry is in at most one message pair and its ACKs say exactly what
 * happened to it. The kernel commits a transaction all or nothing: a failed
 * one commits nothing even where messages ACK 0, so after a failure the
 * entries of the messages that ACKed 0 are simply sent again.
 *
 * How each error is read (one transaction = the changes of up to 2048
 * entries):
 *   NEWSETELEM (or the empty "probe" NEWSETELEM sent for a set that only
 *   has deletions) ENOENT  -> table or set missing: recreate table, sets,
 *                             chain and drop rules, then re-seed every live
 *                             element from the shadow table;
 *   DELSETELEM ENOENT      -> an element is not there (expired, deleted by
 *                             hand): a refresh becomes a plain add, a
 *                             deletion is done; when the message held
 *                             several elements they are retried one per
 *                             message to find which;
 *   ENFILE                 -> set full: counted, logged, that message's
 *                             elements are given up;
 *   anything else          -> counted, logged, given up likewise.
 *
 * Refreshing a timeout is DELSETELEM + NEWSETELEM in one transaction:
 * re-adding an existing element refreshes it on 6.18 but not on Debian's 6.1.
 */
#include "nftset.h"

#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <event2/event.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

#include "log.h"

#define NONE			UINT32_MAX
#define SET_COUNT		4		/* block4, block6, trust4, trust6 */
#define TX_ELEMS_MAX		2048		/* entries per transaction */
#define TX_ISOLATED_MAX		64		/* one-element DELSETELEMs per transaction */
#define TX_MSGS_MAX		128		/* >= 2 * (TX_ELEMS_MAX / MSG_ELEMS + SET_COUNT) + ISOLATED + SET_COUNT */
#define TX_BUF_SIZE		(256 * 1024)
#define RECV_BUF_SIZE		(64 * 1024)
#define SOCK_BUF_WANT		(1024 * 1024)
#define ACK_TIMEOUT_MS		2000
#define RESTORE_BACKOFF_MIN_MS	1000
#define RESTORE_BACKOFF_MAX_MS	60000
#define SEND_RETRY_MS		10
#define GC_INTERVAL_MS		30000
#define LOG_INTERVAL_MS		10000
#define PUMP_ROUNDS_MAX		16		/* transactions per loop turn before yielding */
#define ACK_PENDING		(-1)
/* Worst-case bytes: one element (list nest, key nest, value, timeout) and a message header. */
#define ELEM_BYTES_MAX		(4 + 4 + 4 + 16 + 4 + 8)
#define MSG_HDR_BYTES_MAX	(NLMSG_HDRLEN + 4 + 4 + 256 + 4 + 8 + 4)

static const char *const set_names[SET_COUNT] = { "block4", "block6", "trust4", "trust6" };

/* One element of the shadow table; entries never move, so transactions refer to them by index. */
struct shadow_entry {
	uint32_t	hash_next;	/* chain, or free list */
	uint32_t	dirty_next;	/* FIFO of entries to write */
	int64_t		expiry;		/* wanted expiry, monotonic ms; 0 = none */
	int64_t		timeout;	/* as asked for, ms; 0 = none */
	int64_t		kexpiry;	/* expiry of what the kernel may hold; 0 = none or unknown */
	uint8_t		key[16];
	uint8_t		set;		/* index into set_names */
	bool		in_use;
	bool		want;		/* should be in the kernel (until expiry) */
	bool		maybe_present;	/* the kernel may hold it; unknown counts as yes */
	bool		dirty;
	bool		in_flight;
	bool		isolate;	/* its DELSETELEM goes alone, to find a missing element */
};

enum tx_op { TX_NONE = 0, TX_ADD, TX_REFRESH, TX_DEL };
enum msg_kind { MSG_NEW = 0, MSG_DEL, MSG_PROBE, MSG_RESTORE };

struct tx_item {
	uint32_t	entry;
	int64_t		timeout_sent;
	uint8_t		op;		/* enum tx_op */
	bool		missing;	/* a one-element DELSETELEM said ENOENT */
	bool		given_up;	/* its message failed for good (ENFILE, other) */
	bool		sent_alone;
	int64_t		expiry_sent;
};

struct tx_msg {
	uint8_t		kind;		/* enum msg_kind */
	uint8_t		set;
	int		err;		/* ACK_PENDING, 0 or an errno */
	uint32_t	first, count;	/* into tx.refs */
};

struct tx {
	bool		built;		/* buf holds a transaction not yet sent */
	bool		active;		/* sent, ACKs outstanding */
	bool		restore;
	char		*buf;
	size_t		len;
	uint32_t	begin_seq, first_msg_seq;
	size_t		nmsgs, acked;
	struct tx_msg	msgs[TX_MSGS_MAX];
	size_t		nitems;
	struct tx_item	items[TX_ELEMS_MAX];
	size_t		nrefs;
	uint32_t	refs[2 * TX_ELEMS_MAX];	/* item indices, message by message */
};

struct ratelimit {
	int64_t		last;
	uint64_t	suppressed;
};

struct nftset {
	struct event_base	*base;
	struct mnl_socket	*nl;
	struct event		*read_ev, *write_ev, *flush_ev, *ack_ev, *retry_ev, *gc_ev;
	char			 table[256];
	uint16_t		 port;
	uint32_t		 seq;
	uint64_t		 hash_seed;
	size_t			 tx_elems_max;	/* lowered if the socket buffer is small */

	struct shadow_entry	*entries;	/* NFTSET_QUEUE_MAX */
	uint32_t		*buckets;	/* NFTSET_QUEUE_MAX, power of two */
	uint32_t		 free_head;	/* entries freed, reused first */
	uint32_t		 never_used;	/* entries from here on were never touched (memory stays unpaged) */
	size_t			 in_use;
	uint32_t		 dirty_head, dirty_tail;
	size_t			 ndirty;
	int64_t			 last_sweep;

	bool			 restore_needed;
	bool			 paused;	/* retry_ev pending: back-off after a failed restore or send */
	bool			 write_wait;	/* write_ev pending: the send would have blocked */
	bool			 missing_logged;
	int64_t			 restore_backoff;
	unsigned		 missing_sets;	/* bit per set whose NEWSETELEM said ENOENT */
	int64_t			 set_broken_until[SET_COUNT];	/* set missing from a table that exists */

	struct tx		 tx;
	char			 rbuf[RECV_BUF_SIZE];
	struct nftset_stats	 stats;
	struct ratelimit	 rl_enfile, rl_error, rl_dropped;
};

static void	nftset_pump(struct nftset *ns);

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ratelimit_pass - true at most once per LOG_INTERVAL_MS; the others are counted for the next line. */
static bool
ratelimit_pass(struct ratelimit *rl, uint64_t *suppressed)
{
	int64_t now = mono_ms();

	if (rl->last != 0 && now - rl->last < LOG_INTERVAL_MS) {
		rl->suppressed++;
		return false;
	}
	rl->last = now;
	*suppressed = rl->suppressed;
	rl->suppressed = 0;
	return true;
}

static void
timer_add_ms(struct event *ev, int64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(ev, &tv);
}

/* ---- keys ---- */

static bool
is_loopback(const struct netaddr *a)
{
	static const uint8_t zero8[8];

	if (a->family == AF_INET)
		return a->bytes[0] == 127;
	/* ::1 itself, and every /64 key of ::/64 would cover it. */
	return memcmp(a->bytes, zero8, 8) == 0;
}

/*
 * key_normalize - the set key for addr: IPv4-mapped IPv6 as IPv4, IPv6
 * masked to its /64; -1 for another family or a loopback address.
 */
static int
key_normalize(const struct netaddr *addr, struct netaddr *key)
{
	*key = *addr;
	if (key->family != AF_INET && key->family != AF_INET6)
		return -1;
	netaddr_normalize(key);
	if (key->family == AF_INET6)
		netaddr_mask(key, 64);
	else
		memset(key->bytes + 4, 0, sizeof(key->bytes) - 4);
	if (is_loopback(key))
		return -1;
	return 0;
}

static unsigned
key_len(unsigned set)
{
	return (set & 1) ? 16 : 4;
}

static unsigned
set_index(enum nftset_kind kind, int family)
{
	return (kind == NFTSET_TRUST ? 2u : 0u) + (family == AF_INET6 ? 1u : 0u);
}

/* ---- netlink message building ---- */

/* A bounded output buffer: every write checks room first. */
struct nlbuf {
	char	*buf;
	size_t	 cap, off;
};

static struct nlmsghdr *
elem_msg_begin(struct nlbuf *b, uint16_t type, uint16_t flags, uint32_t seq, const char *table, const char *set,
    struct nlattr **elems)
{
	struct nlmsghdr *nlh;
	size_t need = NLMSG_HDRLEN + 4 + MNL_ALIGN(4 + strlen(table) + 1) + MNL_ALIGN(4 + strlen(set) + 1) + 4;

	if (b->off + need + NLMSG_HDRLEN + 4 > b->cap)
		return NULL;
	nlh = nftnl_nlmsg_build_hdr(b->buf + b->off, type, NFPROTO_INET, flags, seq);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, table);
	mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, set);
	*elems = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
	return nlh;
}

static int
elem_msg_put(struct nlbuf *b, struct nlmsghdr *nlh, const uint8_t *key, unsigned klen, int64_t timeout_ms)
{
	struct nlattr *elem, *k;

	if (b->off + nlh->nlmsg_len + ELEM_BYTES_MAX + NLMSG_HDRLEN + 4 > b->cap)
		return -1;
	elem = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
	k = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_KEY);
	mnl_attr_put(nlh, NFTA_DATA_VALUE, klen, key);
	mnl_attr_nest_end(nlh, k);
	if (timeout_ms > 0)
		mnl_attr_put_u64(nlh, NFTA_SET_ELEM_TIMEOUT, htobe64((uint64_t)timeout_ms));
	mnl_attr_nest_end(nlh, elem);
	return 0;
}

static void
elem_msg_end(struct nlbuf *b, struct nlmsghdr *nlh, struct nlattr *elems)
{
	mnl_attr_nest_end(nlh, elems);
	b->off += nlh->nlmsg_len;
}

static int
batch_begin(struct nlbuf *b, uint32_t seq)
{
	if (b->off + NLMSG_HDRLEN + 4 > b->cap)
		return -1;
	b->off += nftnl_batch_begin(b->buf + b->off, seq)->nlmsg_len;
	return 0;
}

static int
batch_end(struct nlbuf *b, uint32_t seq)
{
	if (b->off + NLMSG_HDRLEN + 4 > b->cap)
		return -1;
	b->off += nftnl_batch_end(b->buf + b->off, seq)->nlmsg_len;
	return 0;
}

size_t
nftset_build_batch(char *buf, size_t len, const char *table, const char *set, int family_af,
    const struct netaddr *keys, const int64_t *timeouts_ms, size_t n, uint32_t *seq)
{
	struct nlbuf b = { .buf = buf, .cap = len, .off = 0 };
	unsigned klen = family_af == AF_INET6 ? 16 : 4;

	if (buf == NULL || table == NULL || set == NULL || seq == NULL || (n > 0 && keys == NULL) ||
	    (family_af != AF_INET && family_af != AF_INET6) || strlen(table) >= 256 || strlen(set) >= 256)
		return 0;
	if (batch_begin(&b, (*seq)++) == -1)
		return 0;
	for (size_t i = 0; i < n; i += NFTSET_MSG_ELEMS) {
		size_t end = i + NFTSET_MSG_ELEMS < n ? i + NFTSET_MSG_ELEMS : n;
		struct nlattr *elems;
		struct nlmsghdr *nlh = elem_msg_begin(&b, NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_ACK, (*seq)++, table,
		    set, &elems);

		if (nlh == NULL)
			return 0;
		for (size_t j = i; j < end; j++) {
			struct netaddr key;
			int64_t t = timeouts_ms ? timeouts_ms[j] : 0;

			if (key_normalize(&keys[j], &key) == -1 || key.family != family_af || t < 0 ||
			    t > NFTSET_TIMEOUT_MAX_MS)
				return 0;
			if (elem_msg_put(&b, nlh, key.bytes, klen, t) == -1)
				return 0;
		}
		elem_msg_end(&b, nlh, elems);
	}
	if (batch_end(&b, (*seq)++) == -1)
		return 0;
	return b.off;
}

/* ---- the shadow table ---- */

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

static struct shadow_entry *
shadow_find(struct nftset *ns, unsigned set, const uint8_t *key)
{
	for (uint32_t i = ns->buckets[shadow_hash(ns, set, key)]; i != NONE; i = ns->entries[i].hash_next) {
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

/* want_now / kernel_live - what should be and what may be in the kernel at now. */
static bool
want_now(const struct shadow_entry *e, int64_t now)
{
	return e->want && (e->expiry == 0 || e->expiry > now);
}

static bool
kernel_live(const struct shadow_entry *e, int64_t now)
{
	return e->maybe_present && (e->kexpiry == 0 || e->kexpiry > now);
}

/* shadow_settle - free an entry nobody needs any more: nothing wanted, nothing in the kernel, nothing pending. */
static void
shadow_settle(struct nftset *ns, struct shadow_entry *e, int64_t now)
{
	if (e->in_use && !e->dirty && !e->in_flight && !want_now(e, now) && !kernel_live(e, now))
		shadow_free(ns, e);
}

/* shadow_sweep - free every settled entry (expired elements), at most once a second unless forced. */
static void
shadow_sweep(struct nftset *ns, bool force)
{
	int64_t now = mono_ms();

	if (!force && now - ns->last_sweep < 1000)
		return;
	ns->last_sweep = now;
	for (uint32_t i = 0; i < ns->never_used; i++)
		shadow_settle(ns, &ns->entries[i], now);
}

static struct shadow_entry *
shadow_get(struct nftset *ns, unsigned set, const uint8_t *key)
{
	struct shadow_entry *e = shadow_find(ns, set, key);
	uint32_t idx, b;

	if (e != NULL)
		return e;
	if (ns->free_head == NONE && ns->never_used == NFTSET_QUEUE_MAX)
		shadow_sweep(ns, false);
	if (ns->free_head != NONE) {
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
	e->dirty_next = NONE;
	b = shadow_hash(ns, set, key);
	e->hash_next = ns->buckets[b];
	ns->buckets[b] = idx;
	ns->in_use++;
	return e;
}

static void
schedule_flush(struct nftset *ns, int64_t delay_ms)
{
	if (delay_ms == 0)
		evtimer_del(ns->flush_ev);
	if (!evtimer_pending(ns->flush_ev, NULL))
		timer_add_ms(ns->flush_ev, delay_ms);
}

/* entry_mark_dirty - put an entry on the write FIFO (once). */
static void
entry_mark_dirty(struct nftset *ns, struct shadow_entry *e)
{
	uint32_t idx = (uint32_t)(e - ns->entries);

	if (e->dirty)
		return;
	e->dirty = true;
	e->dirty_next = NONE;
	if (ns->dirty_tail == NONE)
		ns->dirty_head = idx;
	else
		ns->entries[ns->dirty_tail].dirty_next = idx;
	ns->dirty_tail = idx;
	ns->ndirty++;
	schedule_flush(ns, NFTSET_FLUSH_DELAY_MS);
}

static struct shadow_entry *
dirty_pop(struct nftset *ns)
{
	struct shadow_entry *e;

	if (ns->dirty_head == NONE)
		return NULL;
	e = &ns->entries[ns->dirty_head];
	ns->dirty_head = e->dirty_next;
	if (ns->dirty_head == NONE)
		ns->dirty_tail = NONE;
	e->dirty = false;
	e->dirty_next = NONE;
	ns->ndirty--;
	return e;
}

/* ---- public queueing ---- */

static void
log_dropped(struct nftset *ns, const struct netaddr *key)
{
	char a[NETADDR_STRLEN];
	uint64_t suppressed;

	ns->stats.queue_dropped++;
	if (ratelimit_pass(&ns->rl_dropped, &suppressed))
		log_warn("nftset: queue full (%d elements), dropped change for %s (%llu more dropped since last report)",
		    NFTSET_QUEUE_MAX, netaddr_format(key, a, sizeof(a)), (unsigned long long)suppressed);
}

int
nftset_add(struct nftset *ns, enum nftset_kind kind, const struct netaddr *addr, int64_t timeout_ms)
{
	struct netaddr key;
	struct shadow_entry *e;

	if (ns == NULL || addr == NULL || (kind != NFTSET_BLOCK && kind != NFTSET_TRUST) || timeout_ms < 0 ||
	    timeout_ms > NFTSET_TIMEOUT_MAX_MS || key_normalize(addr, &key) == -1)
		return -1;
	e = shadow_get(ns, set_index(kind, key.family), key.bytes);
	if (e == NULL) {
		log_dropped(ns, &key);
		return -1;
	}
	e->want = true;
	e->timeout = timeout_ms;
	e->expiry = timeout_ms > 0 ? mono_ms() + timeout_ms : 0;
	entry_mark_dirty(ns, e);
	ns->stats.adds++;
	return 0;
}

int
nftset_del(struct nftset *ns, enum nftset_kind kind, const struct netaddr *addr)
{
	struct netaddr key;
	struct shadow_entry *e;
	bool fresh;

	if (ns == NULL || addr == NULL || (kind != NFTSET_BLOCK && kind != NFTSET_TRUST) ||
	    key_normalize(addr, &key) == -1)
		return -1;
	fresh = shadow_find(ns, set_index(kind, key.family), key.bytes) == NULL;
	e = shadow_get(ns, set_index(kind, key.family), key.bytes);
	if (e == NULL) {
		log_dropped(ns, &key);
		return -1;
	}
	if (fresh) {
		/* Not written by us (or forgotten): the kernel may still hold it, from before a restart. */
		e->maybe_present = true;
		e->kexpiry = 0;
	}
	e->want = false;
	e->expiry = e->timeout = 0;
	ns->stats.dels++;
	if (e->maybe_present || e->in_flight)
		entry_mark_dirty(ns, e);
	else
		shadow_settle(ns, e, mono_ms());
	return 0;
}

/* reseed_all - the kernel sets are (or may be) empty: every live element is written again. */
static size_t
reseed_all(struct nftset *ns)
{
	int64_t now = mono_ms();
	size_t n = 0;

	for (uint32_t i = 0; i < ns->never_used; i++) {
		struct shadow_entry *e = &ns->entries[i];

		if (!e->in_use)
			continue;
		if (!e->in_flight)
			e->maybe_present = false;
		e->isolate = false;
		if (want_now(e, now)) {
			entry_mark_dirty(ns, e);
			n++;
		} else {
			shadow_settle(ns, e, now);
		}
	}
	ns->stats.reseeded += n;
	return n;
}

void
nftset_reseed(struct nftset *ns)
{
	size_t n;

	if (ns == NULL)
		return;
	memset(ns->set_broken_until, 0, sizeof(ns->set_broken_until));
	n = reseed_all(ns);
	log_info("nftset: re-seeding %zu elements of table inet %s", n, ns->table);
}

size_t
nftset_pending(const struct nftset *ns)
{
	if (ns == NULL)
		return 0;
	return ns->ndirty + (ns->tx.active || ns->tx.built ? ns->tx.nitems : 0) + (ns->restore_needed ? 1 : 0);
}

const struct nftset_stats *
nftset_stats(const struct nftset *ns)
{
	return &ns->stats;
}

/* ---- building a transaction ---- */

static void
tx_reset(struct tx *tx)
{
	tx->built = tx->active = tx->restore = false;
	tx->len = 0;
	tx->nmsgs = tx->acked = tx->nitems = tx->nrefs = 0;
}

static struct tx_msg *
tx_new_msg(struct tx *tx, uint8_t kind, uint8_t set)
{
	struct tx_msg *m;

	if (tx->nmsgs >= TX_MSGS_MAX)
		fatalx("nftset: more than %d messages in one transaction", TX_MSGS_MAX);
	m = &tx->msgs[tx->nmsgs++];
	m->kind = kind;
	m->set = set;
	m->err = ACK_PENDING;
	m->first = (uint32_t)tx->nrefs;
	m->count = 0;
	return m;
}

/*
 * tx_emit_elems - the messages of one kind for one set: items matching are
 * written NFTSET_MSG_ELEMS per message (or one per message when alone).
 */
static int
tx_emit_elems(struct nftset *ns, struct nlbuf *b, unsigned set, uint8_t kind, bool alone, int64_t now)
{
	struct tx *tx = &ns->tx;
	struct tx_msg *m = NULL;
	struct nlmsghdr *nlh = NULL;
	struct nlattr *elems = NULL;
	int emitted = 0;

	for (size_t i = 0; i < tx->nitems; i++) {
		struct tx_item *it = &tx->items[i];
		struct shadow_entry *e = &ns->entries[it->entry];
		bool match;

		if (e->set != set)
			continue;
		if (kind == MSG_NEW)
			match = it->op == TX_ADD || it->op == TX_REFRESH;
		else
			match = (it->op == TX_DEL || it->op == TX_REFRESH) && it->sent_alone == alone;
		if (!match)
			continue;
		if (m != NULL && (alone || m->count >= NFTSET_MSG_ELEMS)) {
			elem_msg_end(b, nlh, elems);
			m = NULL;
		}
		if (m == NULL) {
			m = tx_new_msg(tx, kind, (uint8_t)set);
			nlh = elem_msg_begin(b, kind == MSG_NEW ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM,
			    kind == MSG_NEW ? NLM_F_CREATE | NLM_F_ACK : NLM_F_ACK, tx->first_msg_seq + (uint32_t)(tx->nmsgs - 1),
			    ns->table, set_names[set], &elems);
			if (nlh == NULL)
				return -1;
		}
		if (elem_msg_put(b, nlh, e->key, key_len(set), kind == MSG_NEW ? it->timeout_sent : 0) == -1)
			return -1;
		tx->refs[tx->nrefs++] = (uint32_t)i;
		m->count++;
		emitted++;
	}
	if (m != NULL)
		elem_msg_end(b, nlh, elems);
	return emitted;
}

/*
 * tx_build_elements - take dirty entries off the FIFO and write them as one
 * transaction: all deletions first (refreshes delete before they add), then
 * the additions, then an empty NEWSETELEM probe for each set that only had
 * deletions, so that a missing set is told apart from a missing element.
 * Returns false if there was nothing to write.
 */
static bool
tx_build_elements(struct nftset *ns)
{
	struct tx *tx = &ns->tx;
	struct nlbuf b = { .buf = tx->buf, .cap = TX_BUF_SIZE, .off = 0 };
	int64_t now = mono_ms();
	size_t alone = 0;
	bool has_del[SET_COUNT] = { false }, has_new[SET_COUNT] = { false };

	tx_reset(tx);
	while (tx->nitems < ns->tx_elems_max && ns->dirty_head != NONE) {
		struct shadow_entry *e = &ns->entries[ns->dirty_head];
		bool want = want_now(e, now), live = kernel_live(e, now);
		struct tx_item *it;
		uint8_t op;

		if (e->isolate && live && alone >= TX_ISOLATED_MAX)
			break;
		dirty_pop(ns);
		if (ns->set_broken_until[e->set] > now) {
			shadow_settle(ns, e, now);	/* given up: its set is missing, see restore_complete */
			continue;
		}
		if (want)
			op = live ? TX_REFRESH : TX_ADD;
		else
			op = live ? TX_DEL : TX_NONE;
		if (op == TX_NONE) {
			e->maybe_present = false;
			shadow_settle(ns, e, now);
			continue;
		}
		it = &tx->items[tx->nitems++];
		memset(it, 0, sizeof(*it));
		it->entry = (uint32_t)(e - ns->entries);
		it->op = op;
		it->expiry_sent = want ? e->expiry : 0;
		/*
		 * The timeout as asked for (what `nft list` shows) if it was asked
		 * for in the last second; the time left when re-seeding or after a
		 * long wait, so a retry never stretches a block.
		 */
		if (want && e->expiry != 0)
			it->timeout_sent = e->expiry - now >= e->timeout - 1000 ? e->timeout : e->expiry - now;
		it->sent_alone = e->isolate && op != TX_ADD;
		if (it->sent_alone)
			alone++;
		e->in_flight = true;
		if (op != TX_DEL)
			has_new[e->set] = true;
		if (op != TX_ADD)
			has_del[e->set] = true;
	}
	if (tx->nitems == 0)
		return false;

	tx->begin_seq = ns->seq++;
	tx->first_msg_seq = ns->seq;
	if (batch_begin(&b, tx->begin_seq) == -1)
		goto overflow;
	for (unsigned s = 0; s < SET_COUNT; s++) {
		if (has_del[s] && (tx_emit_elems(ns, &b, s, MSG_DEL, false, now) == -1 ||
		    tx_emit_elems(ns, &b, s, MSG_DEL, true, now) == -1))
			goto overflow;
	}
	for (unsigned s = 0; s < SET_COUNT; s++) {
		if (has_new[s] && tx_emit_elems(ns, &b, s, MSG_NEW, false, now) == -1)
			goto overflow;
	}
	for (unsigned s = 0; s < SET_COUNT; s++) {
		struct nlattr *elems;
		struct nlmsghdr *nlh;

		if (!has_del[s] || has_new[s])
			continue;
		tx_new_msg(tx, MSG_PROBE, (uint8_t)s);
		nlh = elem_msg_begin(&b, NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_ACK,
		    tx->first_msg_seq + (uint32_t)(tx->nmsgs - 1), ns->table, set_names[s], &elems);
		if (nlh == NULL)
			goto overflow;
		elem_msg_end(&b, nlh, elems);
	}
	ns->seq = tx->first_msg_seq + (uint32_t)tx->nmsgs;
	if (batch_end(&b, ns->seq++) == -1)
		goto overflow;
	tx->len = b.off;
	tx->built = true;
	return true;
overflow:
	/* The limits above make this impossible; a state that cannot happen. */
	fatalx("nftset: transaction of %zu elements does not fit %d bytes", tx->nitems, TX_BUF_SIZE);
}

static struct nftnl_expr *
expr_meta(uint32_t key)
{
	struct nftnl_expr *e = nftnl_expr_alloc("meta");

	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	return e;
}

static struct nftnl_expr *
expr_cmp_eq(const void *data, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("cmp");

	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
	nftnl_expr_set_data(e, NFTNL_EXPR_CMP_DATA, data, len);
	return e;
}

static struct nftnl_expr *
expr_payload(uint32_t base, uint32_t offset, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("payload");

	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	return e;
}

/*
 * restore_rule - `tcp dport <port> ip saddr @block4 drop`, or for IPv6
 * `tcp dport <port> ip6 saddr & ffff:ffff:ffff:ffff:: @block6 drop`, with
 * the expressions nft 1.0.6 generates for them (so `nft list` prints the
 * same text as for the loaded ruleset).
 */
static struct nftnl_rule *
restore_rule(const struct nftset *ns, bool v6, uint32_t set_id)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	struct nftnl_expr *e;
	uint8_t tcp = IPPROTO_TCP, nfproto = v6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
	uint16_t dport = htons(ns->port);

	if (r == NULL)
		return NULL;
	nftnl_rule_set_str(r, NFTNL_RULE_TABLE, ns->table);
	nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, "prerouting");
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	nftnl_rule_add_expr(r, expr_meta(NFT_META_L4PROTO));
	nftnl_rule_add_expr(r, expr_cmp_eq(&tcp, sizeof(tcp)));
	nftnl_rule_add_expr(r, expr_payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2));
	nftnl_rule_add_expr(r, expr_cmp_eq(&dport, sizeof(dport)));
	nftnl_rule_add_expr(r, expr_meta(NFT_META_NFPROTO));
	nftnl_rule_add_expr(r, expr_cmp_eq(&nfproto, sizeof(nfproto)));
	if (v6) {
		static const uint8_t mask[16] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
		static const uint8_t zero[16];

		nftnl_rule_add_expr(r, expr_payload(NFT_PAYLOAD_NETWORK_HEADER, 8, 16));
		e = nftnl_expr_alloc("bitwise");
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, 16);
		nftnl_expr_set_data(e, NFTNL_EXPR_BITWISE_MASK, mask, sizeof(mask));
		nftnl_expr_set_data(e, NFTNL_EXPR_BITWISE_XOR, zero, sizeof(zero));
		nftnl_rule_add_expr(r, e);
	} else {
		nftnl_rule_add_expr(r, expr_payload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4));
	}
	e = nftnl_expr_alloc("lookup");
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
	nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, v6 ? "block6" : "block4");
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set_id);
	nftnl_rule_add_expr(r, e);
	e = nftnl_expr_alloc("immediate");
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, NF_DROP);
	nftnl_rule_add_expr(r, e);
	return r;
}

static struct nlmsghdr *
restore_msg(struct nftset *ns, struct nlbuf *b, uint16_t type, uint16_t flags)
{
	struct tx *tx = &ns->tx;
	struct nlmsghdr *nlh;

	/* Each restore message is well under 1 KB; the buffer is 256 KB. */
	if (b->off + 4096 > b->cap)
		fatalx("nftset: restore transaction too large");
	tx_new_msg(tx, MSG_RESTORE, 0);
	nlh = nftnl_nlmsg_build_hdr(b->buf + b->off, type, NFPROTO_INET, flags | NLM_F_ACK,
	    tx->first_msg_seq + (uint32_t)(tx->nmsgs - 1));
	return nlh;
}

/*
 * tx_build_restore - recreate the table as the ruleset defines it: the
 * table (NLM_F_EXCL: if it exists something else is wrong and we change
 * nothing), the four sets, the prerouting chain and its two drop rules.
 * Tier sets and the transparent/fast-path rules are not ours to rebuild:
 * reloading the ruleset does that.
 */
static int
tx_build_restore(struct nftset *ns)
{
	struct tx *tx = &ns->tx;
	struct nlbuf b = { .buf = tx->buf, .cap = TX_BUF_SIZE, .off = 0 };
	struct nftnl_table *t = nftnl_table_alloc();
	struct nftnl_chain *c = nftnl_chain_alloc();
	struct nftnl_udata_buf *ud = nftnl_udata_buf_alloc(64);
	struct nlmsghdr *nlh;
	int rc = -1;

	tx_reset(tx);
	tx->restore = true;
	if (t == NULL || c == NULL || ud == NULL)
		goto out;
	tx->begin_seq = ns->seq++;
	tx->first_msg_seq = ns->seq;
	batch_begin(&b, tx->begin_seq);

	nftnl_table_set_str(t, NFTNL_TABLE_NAME, ns->table);
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	nlh = restore_msg(ns, &b, NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL);
	nftnl_table_nlmsg_build_payload(nlh, t);
	b.off += nlh->nlmsg_len;

	/* nft records the key byte order in the set's user data; `nft list` reads it back. */
	nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_KEYBYTEORDER, 2 /* BYTEORDER_BIG_ENDIAN */);
	for (unsigned s = 0; s < SET_COUNT; s++) {
		struct nftnl_set *set = nftnl_set_alloc();

		if (set == NULL)
			goto out;
		nftnl_set_set_str(set, NFTNL_SET_TABLE, ns->table);
		nftnl_set_set_str(set, NFTNL_SET_NAME, set_names[s]);
		nftnl_set_set_u32(set, NFTNL_SET_FAMILY, NFPROTO_INET);
		nftnl_set_set_u32(set, NFTNL_SET_FLAGS, NFT_SET_TIMEOUT);
		nftnl_set_set_u32(set, NFTNL_SET_KEY_TYPE, (s & 1) ? 8 /* ipv6_addr */ : 7 /* ipv4_addr */);
		nftnl_set_set_u32(set, NFTNL_SET_KEY_LEN, key_len(s));
		nftnl_set_set_u32(set, NFTNL_SET_ID, s + 1);
		nftnl_set_set_data(set, NFTNL_SET_USERDATA, nftnl_udata_buf_data(ud), nftnl_udata_buf_len(ud));
		nlh = restore_msg(ns, &b, NFT_MSG_NEWSET, NLM_F_CREATE | NLM_F_EXCL);
		nftnl_set_nlmsg_build_payload(nlh, set);
		b.off += nlh->nlmsg_len;
		nftnl_set_free(set);
	}

	nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, ns->table);
	nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, "prerouting");
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter");
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_INET_PRE_ROUTING);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, -150);		/* "mangle" */
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	nlh = restore_msg(ns, &b, NFT_MSG_NEWCHAIN, NLM_F_CREATE | NLM_F_EXCL);
	nftnl_chain_nlmsg_build_payload(nlh, c);
	b.off += nlh->nlmsg_len;

	for (int v6 = 0; v6 <= 1; v6++) {
		struct nftnl_rule *r = restore_rule(ns, v6, v6 ? 2 : 1);	/* set ids of block4 / block6 */

		if (r == NULL)
			goto out;
		nlh = restore_msg(ns, &b, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
		nftnl_rule_nlmsg_build_payload(nlh, r);
		b.off += nlh->nlmsg_len;
		nftnl_rule_free(r);
	}
	ns->seq = tx->first_msg_seq + (uint32_t)tx->nmsgs;
	batch_end(&b, ns->seq++);
	tx->len = b.off;
	tx->built = true;
	rc = 0;
out:
	if (t != NULL)
		nftnl_table_free(t);
	if (c != NULL)
		nftnl_chain_free(c);
	if (ud != NULL)
		nftnl_udata_buf_free(ud);
	if (rc == -1)
		tx_reset(tx);
	return rc;
}

/* ---- completing a transaction ---- */

static void
log_error(struct nftset *ns, struct ratelimit *rl, const char *what, int err)
{
	uint64_t suppressed;

	if (ratelimit_pass(rl, &suppressed))
		log_warn("nftset: table inet %s: %s: %s (%llu similar since last report)", ns->table, what,
		    strerror(err), (unsigned long long)suppressed);
}

static void
pause_for(struct nftset *ns, int64_t ms)
{
	ns->paused = true;
	timer_add_ms(ns->retry_ev, ms);
}

static void
restore_complete(struct nftset *ns, int begin_err)
{
	struct tx *tx = &ns->tx;
	int err = begin_err;

	for (size_t i = 0; i < tx->nmsgs && err == 0; i++)
		if (tx->msgs[i].err > 0)
			err = tx->msgs[i].err;
	tx_reset(tx);
	if (err == 0) {
		size_t n;

		ns->restore_needed = false;
		ns->missing_logged = false;
		ns->restore_backoff = 0;
		ns->missing_sets = 0;
		memset(ns->set_broken_until, 0, sizeof(ns->set_broken_until));
		ns->stats.restores++;
		n = reseed_all(ns);
		log_info("nftset: recreated table inet %s (sets block4 block6 trust4 trust6, prerouting drop rules "
		    "for port %u); re-seeding %zu elements", ns->table, ns->port, n);
		return;
	}
	ns->stats.other_errors++;
	ns->restore_backoff = ns->restore_backoff == 0 ? RESTORE_BACKOFF_MIN_MS :
	    (ns->restore_backoff * 2 > RESTORE_BACKOFF_MAX_MS ? RESTORE_BACKOFF_MAX_MS : ns->restore_backoff * 2);
	if (err == EEXIST) {
		/*
		 * The table exists, so only a set is missing (deleted by hand):
		 * not ours to repair. Writes to it are given up for a while; the
		 * other sets go on. A ruleset reload plus nftset_reseed mends it.
		 */
		int64_t until = mono_ms() + ns->restore_backoff;

		for (unsigned s = 0; s < SET_COUNT; s++) {
			if (!(ns->missing_sets & (1u << s)))
				continue;
			ns->set_broken_until[s] = until;
			log_warn("nftset: set %s is missing from table inet %s; its changes are given up for %lld s "
			    "(reload the ruleset: mxtierctl rules | nft -f -)", set_names[s], ns->table,
			    (long long)(ns->restore_backoff / 1000));
		}
		ns->restore_needed = false;
		ns->missing_sets = 0;
		return;
	}
	log_error(ns, &ns->rl_error, "recreating the table failed", err);
	pause_for(ns, ns->restore_backoff);
}

enum tx_outcome {
	TX_ACKED = 0,	/* every ACK is in, or the whole batch was refused */
	TX_LOST,	/* ACKs lost or late: the kernel may or may not have committed it */
	TX_UNSENT,	/* never reached the kernel */
};

/*
 * elements_complete - decide what each entry of the finished transaction
 * now is, and which go back on the queue.
 */
static void
elements_complete(struct nftset *ns, int begin_err, enum tx_outcome outcome)
{
	struct tx *tx = &ns->tx;
	int64_t now = mono_ms();
	bool failed = begin_err != 0 || outcome != TX_ACKED, set_missing = false;

	for (size_t i = 0; i < tx->nmsgs && outcome == TX_ACKED; i++) {
		struct tx_msg *m = &tx->msgs[i];

		if (m->err <= 0)
			continue;
		failed = true;
		if (m->err == ENOENT && m->kind != MSG_DEL) {
			set_missing = true;
			ns->missing_sets |= 1u << m->set;
		} else if (m->err == ENOENT) {
			for (uint32_t r = 0; r < m->count; r++) {
				struct tx_item *it = &tx->items[tx->refs[m->first + r]];

				if (m->count == 1)
					it->missing = true;
				else
					ns->entries[it->entry].isolate = true;
			}
		} else {
			if (m->err == ENFILE) {
				ns->stats.enfile++;
				log_error(ns, &ns->rl_enfile, set_names[m->set], m->err);
			} else {
				ns->stats.other_errors++;
				log_error(ns, &ns->rl_error, m->kind == MSG_DEL ? "deleting elements" : "adding elements",
				    m->err);
			}
			for (uint32_t r = 0; r < m->count; r++)
				tx->items[tx->refs[m->first + r]].given_up = true;
		}
	}
	if (begin_err != 0) {
		ns->stats.other_errors++;
		log_error(ns, &ns->rl_error, "batch refused", begin_err);
	}
	if (set_missing) {
		ns->restore_needed = true;
		if (!ns->missing_logged)
			log_warn("nftset: table inet %s or one of its sets is missing (ENOENT); recreating it", ns->table);
		ns->missing_logged = true;
	}

	for (size_t i = 0; i < tx->nitems; i++) {
		struct tx_item *it = &tx->items[i];
		struct shadow_entry *e = &ns->entries[it->entry];

		e->in_flight = false;
		if (it->sent_alone)
			e->isolate = false;
		if (!failed) {
			/* Committed. */
			e->maybe_present = it->op != TX_DEL;
			if (it->op != TX_DEL)
				e->kexpiry = it->expiry_sent;
		} else if (outcome == TX_LOST) {
			/* Unknown: count an add as present until the later of both expiries; a refresh finds out. */
			if (it->op != TX_DEL) {
				if (!e->maybe_present)
					e->kexpiry = it->expiry_sent;
				else if (e->kexpiry != 0 && (it->expiry_sent == 0 || it->expiry_sent > e->kexpiry))
					e->kexpiry = it->expiry_sent;
				e->maybe_present = true;
			}
			entry_mark_dirty(ns, e);
		} else if (outcome == TX_UNSENT || set_missing) {
			/* Nothing committed; after a restore reseed_all decides afresh. */
			entry_mark_dirty(ns, e);
		} else if (begin_err != 0) {
			/* Refused as a whole (EPERM, a failed commit): given up, like any other error. */
		} else {
			if (it->missing)
				e->maybe_present = false;
			if (!it->given_up)
				entry_mark_dirty(ns, e);	/* its messages ACKed 0 but nothing was committed */
		}
		shadow_settle(ns, e, now);
	}
	tx_reset(tx);
}

/* tx_complete - all ACKs of the in-flight transaction are in. */
static void
tx_complete(struct nftset *ns, int begin_err, enum tx_outcome outcome)
{
	evtimer_del(ns->ack_ev);
	if (ns->tx.restore)
		restore_complete(ns, outcome == TX_LOST && begin_err == 0 ? ETIMEDOUT : begin_err);
	else
		elements_complete(ns, begin_err, outcome);
	if (ns->ndirty > 0 || ns->restore_needed)
		schedule_flush(ns, 0);
}

static void
ack_handle(struct nftset *ns, const struct nlmsghdr *nlh)
{
	struct tx *tx = &ns->tx;
	const struct nlmsgerr *e;
	uint32_t seq = nlh->nlmsg_seq;
	int err;

	if (nlh->nlmsg_type != NLMSG_ERROR || nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(*e))
		return;
	e = mnl_nlmsg_get_payload(nlh);
	err = e->error < 0 ? -e->error : e->error;
	if (!tx->active)
		return;		/* late ACK of a transaction given up on */
	if (seq == tx->begin_seq) {
		if (err != 0)
			tx_complete(ns, err, TX_ACKED);
		return;
	}
	if (seq - tx->first_msg_seq >= tx->nmsgs || tx->msgs[seq - tx->first_msg_seq].err != ACK_PENDING)
		return;
	tx->msgs[seq - tx->first_msg_seq].err = err;
	tx->acked++;
	if (err == 0)
		ns->stats.acks_ok++;
	else if (err == ENOENT)
		ns->stats.enoent++;
	if (tx->acked == tx->nmsgs)
		tx_complete(ns, 0, TX_ACKED);
}

/* read_acks - drain the socket without blocking. */
static void
read_acks(struct nftset *ns)
{
	for (;;) {
		ssize_t n = recv(mnl_socket_get_fd(ns->nl), ns->rbuf, sizeof(ns->rbuf), MSG_DONTWAIT);
		const struct nlmsghdr *nlh;
		int len;

		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			ns->stats.other_errors++;
			log_error(ns, &ns->rl_error, "receiving ACKs", errno);
			/* ENOBUFS: ACKs were dropped; what is in flight will never be fully answered. */
			if (ns->tx.active)
				tx_complete(ns, 0, TX_LOST);
			return;
		}
		len = (int)n;
		for (nlh = (const struct nlmsghdr *)ns->rbuf; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len))
			ack_handle(ns, nlh);
	}
}

/* ---- sending ---- */

/* tx_send - send the built transaction; false if the caller should stop pumping. */
static bool
tx_send(struct nftset *ns)
{
	struct tx *tx = &ns->tx;
	ssize_t n;

	do
		n = send(mnl_socket_get_fd(ns->nl), tx->buf, tx->len, MSG_DONTWAIT);
	while (n == -1 && errno == EINTR);
	if (n == (ssize_t)tx->len) {
		tx->built = false;
		tx->active = true;
		ns->stats.batches++;
		timer_add_ms(ns->ack_ev, ACK_TIMEOUT_MS);
		return true;
	}
	if (n >= 0)
		errno = EMSGSIZE;	/* netlink datagrams are not sent in part */
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		ns->write_wait = true;
		event_add(ns->write_ev, NULL);
		return false;
	}
	if (errno == ENOBUFS || errno == ENOMEM) {
		pause_for(ns, SEND_RETRY_MS);
		return false;
	}
	ns->stats.other_errors++;
	log_error(ns, &ns->rl_error, "sending a batch", errno);
	if (tx->restore) {
		restore_complete(ns, errno);	/* as a failed restore: back off */
		return false;
	}
	if (errno == EMSGSIZE && ns->tx_elems_max > 1) {
		ns->tx_elems_max /= 2;
		elements_complete(ns, 0, TX_UNSENT);	/* all go back on the queue, in smaller batches */
		return true;
	}
	for (size_t i = 0; i < tx->nitems; i++) {
		struct shadow_entry *e = &ns->entries[tx->items[i].entry];

		e->in_flight = false;
		shadow_settle(ns, e, mono_ms());
	}
	tx_reset(tx);
	return true;
}

/* nftset_pump - build and send transactions until nothing is left, one is in flight, or the loop must turn. */
static void
nftset_pump(struct nftset *ns)
{
	for (int round = 0; round < PUMP_ROUNDS_MAX; round++) {
		if (ns->tx.active || ns->paused || ns->write_wait)
			return;
		if (!ns->tx.built) {
			if (ns->restore_needed) {
				if (tx_build_restore(ns) == -1) {
					pause_for(ns, RESTORE_BACKOFF_MIN_MS);
					return;
				}
			} else if (ns->dirty_head == NONE || !tx_build_elements(ns)) {
				return;
			}
		}
		if (!tx_send(ns))
			return;
		/* The kernel handles the batch inside send(): the ACKs are usually there already. */
		if (ns->tx.active)
			read_acks(ns);
	}
	if (ns->ndirty > 0 || ns->restore_needed)
		schedule_flush(ns, 0);
}

void
nftset_flush(struct nftset *ns)
{
	if (ns == NULL)
		return;
	evtimer_del(ns->flush_ev);
	nftset_pump(ns);
}

/* ---- events ---- */

static void
on_read(evutil_socket_t fd, short what, void *arg)
{
	struct nftset *ns = arg;

	read_acks(ns);
	nftset_pump(ns);
}

static void
on_write(evutil_socket_t fd, short what, void *arg)
{
	struct nftset *ns = arg;

	ns->write_wait = false;
	nftset_pump(ns);
}

static void
on_flush(evutil_socket_t fd, short what, void *arg)
{
	nftset_pump(arg);
}

static void
on_ack_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct nftset *ns = arg;

	if (!ns->tx.active)
		return;
	ns->stats.other_errors++;
	log_error(ns, &ns->rl_error, "ACKs missing, batch outcome unknown", ETIMEDOUT);
	tx_complete(ns, 0, TX_LOST);
	nftset_pump(ns);
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct nftset *ns = arg;

	ns->paused = false;
	/* After a failed restore, write first: an ENOENT says whether the table is still missing. */
	if (ns->restore_needed && !ns->tx.built && ns->ndirty > 0)
		ns->restore_needed = false;
	nftset_pump(ns);
}

static void
on_gc(evutil_socket_t fd, short what, void *arg)
{
	shadow_sweep(arg, true);
}

/* ---- open / close ---- */

static bool
table_name_ok(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n >= 256)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = t[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
		    ch == '-' || ch == '.'))
			return false;
	}
	return true;
}

/* sock_buf - a buffer size we can rely on: forced if privileged, else as large as the sysctl allows. */
static int
sock_buf(int fd, int opt, int force_opt, int want)
{
	int got = 0;
	socklen_t len = sizeof(got);

	if (setsockopt(fd, SOL_SOCKET, force_opt, &want, sizeof(want)) == -1)
		setsockopt(fd, SOL_SOCKET, opt, &want, sizeof(want));
	if (getsockopt(fd, SOL_SOCKET, opt, &got, &len) == -1)
		return 0;
	return got;
}

struct nftset *
nftset_open(struct event_base *base, const char *table, uint16_t port)
{
	struct nftset *ns;
	int fd, one = 1, sndbuf;
	size_t cap;

	if (base == NULL || table == NULL || !table_name_ok(table)) {
		log_warn("nftset: bad table name");
		return NULL;
	}
	if ((ns = calloc(1, sizeof(*ns))) == NULL)
		return NULL;
	ns->base = base;
	snprintf(ns->table, sizeof(ns->table), "%s", table);
	ns->port = port;
	ns->entries = calloc(NFTSET_QUEUE_MAX, sizeof(*ns->entries));
	ns->buckets = malloc(NFTSET_QUEUE_MAX * sizeof(*ns->buckets));
	ns->tx.buf = malloc(TX_BUF_SIZE);
	if (ns->entries == NULL || ns->buckets == NULL || ns->tx.buf == NULL)
		goto fail;
	memset(ns->buckets, 0xff, NFTSET_QUEUE_MAX * sizeof(*ns->buckets));	/* NONE */
	ns->free_head = NONE;
	ns->never_used = 0;
	ns->dirty_head = ns->dirty_tail = NONE;
	/* A keyed hash: clients choose their addresses, they must not choose our chain lengths. */
	if (getrandom(&ns->hash_seed, sizeof(ns->hash_seed), GRND_NONBLOCK) != sizeof(ns->hash_seed))
		ns->hash_seed = (uint64_t)mono_ms() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
	ns->seq = (uint32_t)time(NULL);

	if ((ns->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_NONBLOCK | SOCK_CLOEXEC)) == NULL) {
		log_warn("nftset: netlink socket: %s", strerror(errno));
		goto fail;
	}
	if (mnl_socket_bind(ns->nl, 0, MNL_SOCKET_AUTOPID) == -1) {
		log_warn("nftset: netlink bind: %s", strerror(errno));
		goto fail;
	}
	fd = mnl_socket_get_fd(ns->nl);
	/* Error ACKs without a copy of the (up to 10 KB) message they answer. */
	setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	sock_buf(fd, SO_RCVBUF, SO_RCVBUFFORCE, SOCK_BUF_WANT);
	sndbuf = sock_buf(fd, SO_SNDBUF, SO_SNDBUFFORCE, SOCK_BUF_WANT);
	/* A transaction must fit the send buffer in one datagram, or send() says EMSGSIZE. */
	cap = sndbuf > 64 + TX_MSGS_MAX * MSG_HDR_BYTES_MAX ?
	    ((size_t)sndbuf - 64 - TX_MSGS_MAX * MSG_HDR_BYTES_MAX) / (2 * ELEM_BYTES_MAX) : 1;
	ns->tx_elems_max = cap < 1 ? 1 : (cap > TX_ELEMS_MAX ? TX_ELEMS_MAX : cap);

	ns->read_ev = event_new(base, fd, EV_READ | EV_PERSIST, on_read, ns);
	ns->write_ev = event_new(base, fd, EV_WRITE, on_write, ns);
	ns->flush_ev = evtimer_new(base, on_flush, ns);
	ns->ack_ev = evtimer_new(base, on_ack_timeout, ns);
	ns->retry_ev = evtimer_new(base, on_retry, ns);
	ns->gc_ev = event_new(base, -1, EV_PERSIST, on_gc, ns);
	if (ns->read_ev == NULL || ns->write_ev == NULL || ns->flush_ev == NULL || ns->ack_ev == NULL ||
	    ns->retry_ev == NULL || ns->gc_ev == NULL)
		goto fail;
	event_add(ns->read_ev, NULL);
	timer_add_ms(ns->gc_ev, GC_INTERVAL_MS);
	log_debug("nftset: writing sets of table inet %s (%zu elements per batch)", ns->table, ns->tx_elems_max);
	return ns;
fail:
	nftset_close(ns);
	return NULL;
}

void
nftset_close(struct nftset *ns)
{
	if (ns == NULL)
		return;

	struct event **evs[] = { &ns->read_ev, &ns->write_ev, &ns->flush_ev, &ns->ack_ev, &ns->retry_ev, &ns->gc_ev };

	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
		if (*evs[i] != NULL)
			event_free(*evs[i]);
		*evs[i] = NULL;
	}
	if (ns->nl != NULL)
		mnl_socket_close(ns->nl);
	free(ns->entries);
	free(ns->buckets);
	free(ns->tx.buf);
	free(ns);
}
