#ifndef MXTIER_NFTSET_INTERNAL_H
#define MXTIER_NFTSET_INTERNAL_H

/*
 * nftset_internal.h - what the pieces of the kernel set writer share; not
 * for callers outside kernel-rules/nftset*.c (and its unit test).
 *
 *   nftset.c          the writer: open/close, nftset_add/del, the event
 *                     loop driving it (pump, send, ACKs, completion);
 *   nftset_shadow.c   the shadow table and its FIFO of dirty entries;
 *   nftset_batch.c    set keys and the netlink batch builder (BEGIN,
 *                     DELSETELEM/NEWSETELEM, probes, END);
 *   nftset_restore.c  recreating the table on ENOENT and re-seeding;
 *   nftset_stats.c    counters and rate-limited failure reports.
 *
 * The calls go one way only, down this list: nftset.c uses every part;
 * nftset_restore.c uses batch, shadow and stats; nftset_batch.c uses
 * shadow and stats; nftset_shadow.c and nftset_stats.c use none. No part
 * calls back up into nftset.c: the event loop (timers, pausing) is the
 * writer's alone, so a part returns what the writer is to do next (an
 * entry newly queued: arm the batching timer; a failed restore: back off
 * for so many ms).
 */

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <linux/netlink.h>

#include <event2/event.h>

#include "netaddr.h"
#include "nftset.h"

#define SHADOW_NONE		UINT32_MAX	/* end of a chain or FIFO */
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

/* One element of the shadow table; entries never move, so transactions refer to them by index. */
struct shadow_entry {
	uint32_t	hash_next;	/* chain, or free list */
	uint32_t	dirty_next;	/* FIFO of entries to write */
	int64_t		expiry;		/* wanted expiry, monotonic ms; 0 = none */
	int64_t		timeout;	/* as asked for, ms; 0 = none */
	int64_t		kexpiry;	/* expiry of what the kernel may hold; 0 = none or unknown */
	uint8_t		key[16];
	uint8_t		set;		/* index into nftset_set_names */
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

/* The one transaction built or in flight: its bytes, and what each message holds. */
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

/* A bounded output buffer: every write checks room first. */
struct nlbuf {
	char	*buf;
	size_t	 cap, off;
};

/* nftset_now_ms - the monotonic clock every expiry is counted on. */
static inline int64_t
nftset_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void
nftset_timer_add_ms(struct event *ev, int64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(ev, &tv);
}

static inline unsigned
nftset_key_len(unsigned set)
{
	return (set & 1) ? 16 : 4;
}

static inline unsigned
nftset_set_index(enum nftset_kind kind, int family)
{
	return (kind == NFTSET_TRUST ? 2u : 0u) + (family == AF_INET6 ? 1u : 0u);
}

/* entry_want_now / entry_kernel_live - what should be and what may be in the kernel at now. */
static inline bool
entry_want_now(const struct shadow_entry *e, int64_t now)
{
	return e->want && (e->expiry == 0 || e->expiry > now);
}

static inline bool
entry_kernel_live(const struct shadow_entry *e, int64_t now)
{
	return e->maybe_present && (e->kexpiry == 0 || e->kexpiry > now);
}

/* nftset.c - the event loop side (for the unit test; no part calls it) */
void	nftset_tx_sent(struct nftset *ns);
void	nftset_ack_handle(struct nftset *ns, const struct nlmsghdr *nlh);

/* nftset_shadow.c */
struct shadow_entry *nftset_shadow_find(struct nftset *ns, unsigned set, const uint8_t *key);
struct shadow_entry *nftset_shadow_get(struct nftset *ns, unsigned set, const uint8_t *key);
void	nftset_shadow_settle(struct nftset *ns, struct shadow_entry *e, int64_t now);
void	nftset_shadow_sweep(struct nftset *ns, bool force);
bool	nftset_entry_mark_dirty(struct nftset *ns, struct shadow_entry *e);	/* true: newly queued */
struct shadow_entry *nftset_dirty_pop(struct nftset *ns);

/* nftset_batch.c */
/* The sets of the table, by index: bit 0 is the family (IPv6), bit 1 the kind (trust). */
extern const char *const nftset_set_names[SET_COUNT];
int	nftset_key_normalize(const struct netaddr *addr, struct netaddr *key);
int	nlbuf_batch_begin(struct nlbuf *b, uint32_t seq);
int	nlbuf_batch_end(struct nlbuf *b, uint32_t seq);
void	nftset_tx_reset(struct tx *tx);
struct tx_msg *nftset_tx_new_msg(struct tx *tx, uint8_t kind, uint8_t set);
bool	nftset_batch_build(struct nftset *ns);

/* nftset_restore.c */
int	nftset_restore_build(struct nftset *ns);
int64_t	nftset_restore_complete(struct nftset *ns, int begin_err, bool *queued);	/* ms to back off, 0: none */
size_t	nftset_reseed_all(struct nftset *ns, bool *queued);

/* nftset_stats.c */
void	nftset_log_error(struct nftset *ns, struct ratelimit *rl, const char *what, int err);
void	nftset_log_dropped(struct nftset *ns, const struct netaddr *key);

#endif
