/*
 * nftset.c - the kernel set writer: block/trust elements of `table inet
 * <table>` written in ACK-checked netlink batches from the event loop.
 * This file is the writer itself: open/close, nftset_add/del, and the
 * state machine the event loop drives (build, send, read ACKs, complete).
 * The pieces it uses are described in nftset_internal.h.
 *
 * Every element mxtierd asked for lives in a bounded shadow table
 * (nftset_shadow.c). A change marks the entry dirty; a short timer (or
 * nftset_flush) turns the dirty entries into one transaction
 * (nftset_batch.c: BEGIN ... END, NLM_F_ACK on every message, at most
 * NFTSET_MSG_ELEMS elements per message) and only one transaction is in
 * flight at a time, so each entry is in at most one message pair and its
 * ACKs say exactly what happened to it. The kernel commits a transaction
 * all or nothing: a failed one commits nothing even where messages ACK 0,
 * so after a failure the entries of the messages that ACKed 0 are simply
 * sent again.
 *
 * How each error is read (one transaction = the changes of up to 2048
 * entries):
 *   NEWSETELEM (or the empty "probe" NEWSETELEM sent for a set that only
 *   has deletions) ENOENT  -> table or set missing: recreate table, sets,
 *                             chain and drop rules, then re-seed every live
 *                             element from the shadow table
 *                             (nftset_restore.c);
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
#include "nftset_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/netfilter/nfnetlink.h>

#include <libmnl/libmnl.h>

#include "log.h"

static void	nftset_pump(struct nftset *ns);

/*
 * ---- timers ----
 * Only this file touches the event loop: the parts below (shadow, batch,
 * restore, stats) return what is to be done and never call back up.
 */

/* nftset_schedule_flush - arm the batching timer (0: at the next loop turn) unless it is already armed. */
static void
nftset_schedule_flush(struct nftset *ns, int64_t delay_ms)
{
	if (delay_ms == 0)
		evtimer_del(ns->flush_ev);
	if (!evtimer_pending(ns->flush_ev, NULL))
		nftset_timer_add_ms(ns->flush_ev, delay_ms);
}

/* nftset_pause_for - stop sending for ms (back-off after a failed restore or send). */
static void
nftset_pause_for(struct nftset *ns, int64_t ms)
{
	ns->paused = true;
	nftset_timer_add_ms(ns->retry_ev, ms);
}

/* entry_dirty - put an entry on the write FIFO; if it was not there, arm the batching timer. */
static void
entry_dirty(struct nftset *ns, struct shadow_entry *e)
{
	if (nftset_entry_mark_dirty(ns, e))
		nftset_schedule_flush(ns, NFTSET_FLUSH_DELAY_MS);
}

/* restore_done - the restore transaction is over (err: how it failed, 0 if not): do what the restore says. */
static void
restore_done(struct nftset *ns, int err)
{
	bool queued = false;
	int64_t pause_ms = nftset_restore_complete(ns, err, &queued);

	if (queued)
		nftset_schedule_flush(ns, NFTSET_FLUSH_DELAY_MS);
	if (pause_ms > 0)
		nftset_pause_for(ns, pause_ms);
}

/* ---- public queueing ---- */

int
nftset_add(struct nftset *ns, enum nftset_kind kind, const struct netaddr *addr, int64_t timeout_ms)
{
	struct netaddr key;
	struct shadow_entry *e;

	if (ns == NULL || addr == NULL || (kind != NFTSET_BLOCK && kind != NFTSET_TRUST) || timeout_ms < 0 ||
	    timeout_ms > NFTSET_TIMEOUT_MAX_MS || nftset_key_normalize(addr, &key) == -1)
		return -1;
	e = nftset_shadow_get(ns, nftset_set_index(kind, key.family), key.bytes);
	if (e == NULL) {
		nftset_log_dropped(ns, &key);
		return -1;
	}
	e->want = true;
	e->timeout = timeout_ms;
	e->expiry = timeout_ms > 0 ? nftset_now_ms() + timeout_ms : 0;
	entry_dirty(ns, e);
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
	    nftset_key_normalize(addr, &key) == -1)
		return -1;
	fresh = nftset_shadow_find(ns, nftset_set_index(kind, key.family), key.bytes) == NULL;
	e = nftset_shadow_get(ns, nftset_set_index(kind, key.family), key.bytes);
	if (e == NULL) {
		nftset_log_dropped(ns, &key);
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
		entry_dirty(ns, e);
	else
		nftset_shadow_settle(ns, e, nftset_now_ms());
	return 0;
}

void
nftset_reseed(struct nftset *ns)
{
	bool queued = false;
	size_t n;

	if (ns == NULL)
		return;
	memset(ns->set_broken_until, 0, sizeof(ns->set_broken_until));
	n = nftset_reseed_all(ns, &queued);
	if (queued)
		nftset_schedule_flush(ns, NFTSET_FLUSH_DELAY_MS);
	log_info("nftset: re-seeding %zu elements of table inet %s", n, ns->table);
}

/* ---- completing a transaction ---- */

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
	int64_t now = nftset_now_ms();
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
				nftset_log_error(ns, &ns->rl_enfile, nftset_set_names[m->set], m->err);
			} else {
				ns->stats.other_errors++;
				nftset_log_error(ns, &ns->rl_error, m->kind == MSG_DEL ? "deleting elements" : "adding elements",
				    m->err);
			}
			for (uint32_t r = 0; r < m->count; r++)
				tx->items[tx->refs[m->first + r]].given_up = true;
		}
	}
	if (begin_err != 0) {
		ns->stats.other_errors++;
		nftset_log_error(ns, &ns->rl_error, "batch refused", begin_err);
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
			entry_dirty(ns, e);
		} else if (outcome == TX_UNSENT || set_missing) {
			/* Nothing committed; after a restore nftset_reseed_all decides afresh. */
			entry_dirty(ns, e);
		} else if (begin_err != 0) {
			/* Refused as a whole (EPERM, a failed commit): given up, like any other error. */
		} else {
			if (it->missing)
				e->maybe_present = false;
			if (!it->given_up)
				entry_dirty(ns, e);	/* its messages ACKed 0 but nothing was committed */
		}
		nftset_shadow_settle(ns, e, now);
	}
	nftset_tx_reset(tx);
}

/* tx_complete - all ACKs of the in-flight transaction are in. */
static void
tx_complete(struct nftset *ns, int begin_err, enum tx_outcome outcome)
{
	evtimer_del(ns->ack_ev);
	if (ns->tx.restore)
		restore_done(ns, outcome == TX_LOST && begin_err == 0 ? ETIMEDOUT : begin_err);
	else
		elements_complete(ns, begin_err, outcome);
	if (ns->ndirty > 0 || ns->restore_needed)
		nftset_schedule_flush(ns, 0);
}

/* nftset_ack_handle - one reply of the in-flight transaction: record its error, complete when all are in. */
void
nftset_ack_handle(struct nftset *ns, const struct nlmsghdr *nlh)
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
			nftset_log_error(ns, &ns->rl_error, "receiving ACKs", errno);
			/* ENOBUFS: ACKs were dropped; what is in flight will never be fully answered. */
			if (ns->tx.active)
				tx_complete(ns, 0, TX_LOST);
			return;
		}
		len = (int)n;
		for (nlh = (const struct nlmsghdr *)ns->rbuf; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len))
			nftset_ack_handle(ns, nlh);
	}
}

/* ---- sending ---- */

/* nftset_tx_sent - the built transaction reached the kernel: its ACKs are awaited from now on. */
void
nftset_tx_sent(struct nftset *ns)
{
	ns->tx.built = false;
	ns->tx.active = true;
	ns->stats.batches++;
	nftset_timer_add_ms(ns->ack_ev, ACK_TIMEOUT_MS);
}

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
		nftset_tx_sent(ns);
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
		nftset_pause_for(ns, SEND_RETRY_MS);
		return false;
	}
	ns->stats.other_errors++;
	nftset_log_error(ns, &ns->rl_error, "sending a batch", errno);
	if (tx->restore) {
		restore_done(ns, errno);	/* as a failed restore: back off */
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
		nftset_shadow_settle(ns, e, nftset_now_ms());
	}
	nftset_tx_reset(tx);
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
				if (nftset_restore_build(ns) == -1) {
					nftset_pause_for(ns, RESTORE_BACKOFF_MIN_MS);
					return;
				}
			} else if (ns->dirty_head == SHADOW_NONE || !nftset_batch_build(ns)) {
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
		nftset_schedule_flush(ns, 0);
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
	nftset_log_error(ns, &ns->rl_error, "ACKs missing, batch outcome unknown", ETIMEDOUT);
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
	nftset_shadow_sweep(arg, true);
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
	memset(ns->buckets, 0xff, NFTSET_QUEUE_MAX * sizeof(*ns->buckets));	/* SHADOW_NONE */
	ns->free_head = SHADOW_NONE;
	ns->never_used = 0;
	ns->dirty_head = ns->dirty_tail = SHADOW_NONE;
	/* A keyed hash: clients choose their addresses, they must not choose our chain lengths. */
	if (getrandom(&ns->hash_seed, sizeof(ns->hash_seed), GRND_NONBLOCK) != sizeof(ns->hash_seed))
		ns->hash_seed = (uint64_t)nftset_now_ms() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
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
	nftset_timer_add_ms(ns->gc_ev, GC_INTERVAL_MS);
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
