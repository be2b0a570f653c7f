/*
 * db.c - the engine's side of the database. The engine never holds a
 * connection nor the conninfo: session rows, contact news and heartbeats
 * leave as messages to the privileged side (db/dbstore.c), lookups come
 * back as rows, listings and reputation are pushed to us and kept here for
 * the connect path. Nothing here may slow mail down: a message that does
 * not fit the channel is dropped and counted like a full write queue.
 */
#include "db.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "daemon.h"
#include "db_rows.h"
#include "history.h"
#include "log.h"
#include "priv.h"
#include "session_record.h"

#define DB_LOOKUPS_MAX		1024
/*
 * Sessions waiting for a lookup at once. Beyond it (a flood) a lookup is
 * still asked, and what it finds still merged into history for the
 * client's next session, but the session is answered "nothing known" at
 * once: under a flood each wait is a few process hops on a busy machine,
 * and waiting sessions would bound the sessions/s by them.
 */
#define DB_LOOKUPS_WAITED	8
#define DB_LOOKUP_FORGET_MS	30000	/* an answer this late is not coming */
#define DB_HEARTBEAT_EVERY_S	60

/* A history lookup: the asker is told within its budget; the entry waits for "done". */
struct db_lookup {
	TAILQ_ENTRY(db_lookup)	 entry;
	uint32_t		 id;
	db_lookup_done		 done;		/* NULL once told, abandoned or timed out */
	void			*arg;
	struct event		*deadline;
	int64_t			 sent_ms;
};

#define DB_LISTING_FOREVER_MS (10LL * 365 * 24 * 3600 * 1000)

static struct {
	bool			 enabled;
	bool			 reader_up;
	struct priv_db_status	 status;		/* the privileged side's counters */
	uint64_t		 dropped, sessions_dropped, reads_late, reads_unwaited;	/* ours */
	TAILQ_HEAD(, db_lookup)	 lookups;
	size_t			 nlookups, nwaiting;	/* entries; of them, sessions waiting */
	uint32_t		 next_id;
	struct event		*heartbeat_timer;
	struct netaddr		*rep_good, *rep_bad;	/* sorted, for bsearch */
	size_t			 nrep_good, nrep_bad;
	struct priv_listing	*listings;
	size_t			 nlistings;
} db = { .lookups = TAILQ_HEAD_INITIALIZER(db.lookups) };

bool
db_enabled(void)
{
	return db.enabled;
}


/*
 * utf8_clean - client-controlled text (PTR names, backend replies) as valid
 * UTF-8: a byte that does not belong to a well-formed sequence becomes
 * \\xHH, so no sender can keep its own row out of the table with bad bytes.
 */
static const char *
utf8_clean(char *dst, size_t len, const char *src)
{
	size_t o = 0;
	const unsigned char *p = (const unsigned char *)src;

	if (src == NULL)
		return NULL;
	while (*p && o + 5 < len) {
		size_t n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
		bool ok = n > 0 && !(n == 2 && *p < 0xc2);

		for (size_t i = 1; ok && i < n; i++)
			ok = (p[i] & 0xc0) == 0x80;
		if (ok && o + n < len) {
			memcpy(dst + o, p, n);
			o += n;
			p += n;
		} else {
			o += (size_t)snprintf(dst + o, len - o, "\\x%02x", *p);
			p++;
		}
	}
	dst[o] = '\0';
	return dst;
}

/* ---- lookups ---- */

static struct db_lookup *
lookup_find(uint32_t id)
{
	struct db_lookup *l;

	TAILQ_FOREACH(l, &db.lookups, entry)
		if (l->id == id)
			return l;
	return NULL;
}

static void
lookup_free(struct db_lookup *l)
{
	TAILQ_REMOVE(&db.lookups, l, entry);
	db.nlookups--;
	if (l->deadline)
		event_free(l->deadline);
	free(l);
}

/* lookup_tell - the asker hears "answered" once, whichever comes first: done or the deadline. */
static void
lookup_tell(struct db_lookup *l)
{
	db_lookup_done done = l->done;

	if (done == NULL)
		return;
	l->done = NULL;
	db.nwaiting--;
	done(l->arg);
}

static void
lookup_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db_lookup *l = arg;

	/* Late: neutral. The entry stays until its "done", so a stuck reader is seen by the next lookup. */
	if (l->done)
		db.reads_late++;
	lookup_tell(l);
}

static void
row_cb(const void *payload, size_t len)
{
	struct priv_db_row r;

	memcpy(&r, payload, sizeof(r));
	r.key[sizeof(r.key) - 1] = '\0';
	if ((r.id != PRIV_DB_ROW_ACTIVE_BLOCK && lookup_find(r.id) == NULL) || r.block_reason < 0 ||
	    r.block_reason >= REASON_COUNT)
		return;
	/* Merged even when the asker gave up: the next session from this client benefits. */
	history_merge(r.key, r.contact_age, r.pending_age, r.pass_left, r.block_left, (enum reason)r.block_reason);
}

static void
done_cb(const void *payload, size_t len)
{
	uint32_t id;
	struct db_lookup *l;

	memcpy(&id, payload, sizeof(id));
	if ((l = lookup_find(id)) == NULL)
		return;
	lookup_tell(l);
	lookup_free(l);
}

/* lookups_forget - entries whose answer is long overdue (a message lost on the way) go. */
static void
lookups_forget(void)
{
	struct db_lookup *l;
	int64_t now = now_ms();

	while ((l = TAILQ_FIRST(&db.lookups)) != NULL && l->done == NULL && now - l->sent_ms > DB_LOOKUP_FORGET_MS)
		lookup_free(l);
}

struct db_lookup *
db_lookup_client(const struct netaddr *client, int64_t budget_ms, db_lookup_done done, void *arg)
{
	struct history_client hc = { .addr = *client, .domain = NULL };
	char keys[3][300];
	const char *values[3] = { NULL, NULL, NULL };
	char msg[sizeof(uint32_t) + 3 * (PRIV_DB_KEY_MAX + 2)];
	struct db_lookup *l, *oldest;
	int64_t ms = budget_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	int n, len;

	if (!db.enabled || !db.reader_up)
		return NULL;
	lookups_forget();
	if (db.nlookups >= DB_LOOKUPS_MAX)
		return NULL;
	/* A read already over its budget (a locked table): answer neutral at once until it returns. */
	if ((oldest = TAILQ_FIRST(&db.lookups)) != NULL && now_ms() - oldest->sent_ms > ms)
		return NULL;
	n = history_keys(&hc, keys);
	for (int i = 0; i < n && i < 3; i++)
		values[i] = keys[i];
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	/* 0 is PRIV_DB_ROW_ACTIVE_BLOCK, never a lookup's. */
	if (++db.next_id == PRIV_DB_ROW_ACTIVE_BLOCK)
		++db.next_id;
	l->id = db.next_id;
	memcpy(msg, &l->id, sizeof(l->id));
	len = priv_strings_encode(msg + sizeof(l->id), sizeof(msg) - sizeof(l->id), 3, values);
	l->deadline = evtimer_new(mxd->base, lookup_deadline_cb, l);
	if (len == -1 || l->deadline == NULL ||
	    priv_to_privileged(PRIV_MSG_DB_LOOKUP, msg, sizeof(l->id) + (size_t)len) == -1) {
		if (l->deadline)
			event_free(l->deadline);
		free(l);
		return NULL;
	}
	l->sent_ms = now_ms();
	TAILQ_INSERT_TAIL(&db.lookups, l, entry);
	db.nlookups++;
	if (db.nwaiting >= DB_LOOKUPS_WAITED) {
		db.reads_unwaited++;
		return NULL;
	}
	l->done = done;
	l->arg = arg;
	db.nwaiting++;
	evtimer_add(l->deadline, &tv);
	return l;
}

void
db_abandon_lookup(struct db_lookup *l)
{
	if (l != NULL && l->done != NULL) {
		l->done = NULL;
		db.nwaiting--;
	}
}

/* ---- listings and reputation, pushed by the privileged side ---- */

static bool
listing_is_host(const struct cidr *c)
{
	return c->prefix_len == (c->addr.family == AF_INET ? 32u : 128u);
}

static bool
listing_present(const struct priv_listing *list, size_t n, const struct priv_listing *l)
{
	for (size_t i = 0; i < n; i++)
		if (list[i].block == l->block && list[i].net.prefix_len == l->net.prefix_len &&
		    netaddr_equal(&list[i].net.addr, &l->net.addr))
			return true;
	return false;
}

static bool
cidr_valid(const struct cidr *c)
{
	return (c->addr.family == AF_INET && c->prefix_len <= 32) || (c->addr.family == AF_INET6 && c->prefix_len <= 128);
}

/*
 * listings_cb - the new set of listings replaces the old. Single
 * addresses also go through history, so they reach the kernel sets like a
 * local mxtierctl block/allow; ones that disappeared are lifted.
 */
static void
listings_cb(const void *payload, size_t len)
{
	size_t n = len / sizeof(struct priv_listing), used = 0;
	struct priv_listing *next;

	if (len % sizeof(struct priv_listing) != 0 || (next = calloc(n + 1, sizeof(*next))) == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		memcpy(&next[used], (const char *)payload + i * sizeof(*next), sizeof(*next));
		if (cidr_valid(&next[used].net) && next[used].ttl_ms >= 0)
			used++;
	}
	for (size_t i = 0; i < db.nlistings; i++) {
		struct history_client hc = { .addr = db.listings[i].net.addr, .domain = NULL };

		if (!listing_is_host(&db.listings[i].net) || listing_present(next, used, &db.listings[i]))
			continue;
		if (db.listings[i].block)
			history_unblock(&hc);
		else
			history_unallow(&hc);
	}
	for (size_t i = 0; i < used; i++) {
		struct history_client hc = { .addr = next[i].net.addr, .domain = NULL };
		int64_t ttl = next[i].ttl_ms > 0 ? next[i].ttl_ms : DB_LISTING_FOREVER_MS;

		if (!listing_is_host(&next[i].net) || listing_present(db.listings, db.nlistings, &next[i]))
			continue;
		if (next[i].block)
			history_block_manual(&hc, ttl);
		else
			history_allow(&hc, ttl);
	}
	free(db.listings);
	db.listings = next;
	db.nlistings = used;
}

static int
netaddr_cmp(const void *a, const void *b)
{
	const struct netaddr *x = a, *y = b;

	if (x->family != y->family)
		return x->family - y->family;
	return memcmp(x->bytes, y->bytes, sizeof(x->bytes));
}

/* reputation_cb - well- and ill-reputed addresses, as sorted arrays the connect path searches. */
static void
reputation_cb(const void *payload, size_t len)
{
	size_t n = len / sizeof(struct priv_reputation), ng = 0, nb = 0;
	struct netaddr *good, *bad;

	if (len % sizeof(struct priv_reputation) != 0)
		return;
	good = calloc(n + 1, sizeof(*good));
	bad = calloc(n + 1, sizeof(*bad));
	if (good == NULL || bad == NULL) {
		free(good);
		free(bad);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct priv_reputation r;
		struct netaddr a;

		memcpy(&r, (const char *)payload + i * sizeof(r), sizeof(r));
		if (r.addr.family != AF_INET && r.addr.family != AF_INET6)
			continue;
		memset(&a, 0, sizeof(a));
		a.family = r.addr.family;
		memcpy(a.bytes, r.addr.bytes, a.family == AF_INET ? 4 : 16);
		if (r.good)
			good[ng++] = a;
		else
			bad[nb++] = a;
	}
	qsort(good, ng, sizeof(*good), netaddr_cmp);
	qsort(bad, nb, sizeof(*bad), netaddr_cmp);
	free(db.rep_good);
	free(db.rep_bad);
	db.rep_good = good;
	db.rep_bad = bad;
	db.nrep_good = ng;
	db.nrep_bad = nb;
	log_debug("database: reputation: %zu good, %zu bad addresses", ng, nb);
}

int
db_reputation(const struct netaddr *addr)
{
	struct netaddr key;

	memset(&key, 0, sizeof(key));
	key.family = addr->family;
	memcpy(key.bytes, addr->bytes, addr->family == AF_INET ? 4 : 16);
	if (db.nrep_bad && bsearch(&key, db.rep_bad, db.nrep_bad, sizeof(key), netaddr_cmp))
		return -1;
	if (db.nrep_good && bsearch(&key, db.rep_good, db.nrep_good, sizeof(key), netaddr_cmp))
		return 1;
	return 0;
}

int
db_listing(const struct netaddr *addr)
{
	int verdict = 0;

	/* A block outranks an allow for the same client. */
	for (size_t i = 0; i < db.nlistings; i++) {
		if (!cidr_contains(&db.listings[i].net, addr))
			continue;
		if (db.listings[i].block)
			return 1;
		verdict = -1;
	}
	return verdict;
}

static void
status_cb(const void *payload, size_t len)
{
	memcpy(&db.status, payload, sizeof(db.status));
	db.enabled = db.status.enabled != 0;
	db.reader_up = db.status.reader_up != 0;
}

/* ---- events to the privileged side ---- */

void
db_record_session(const struct session_record *r)
{
	char id[64], started[48], ended[48], client[NETADDR_STRLEN], prefix[NETADDR_STRLEN + 8], rcpts[16];
	char messages[16], reasons[SESSION_RECORD_REASONS_MAX + 2], score[16], bytes[24], duration[16];
	char rdns[1100], helo[1100], from[1100], rcpt[1100], reply[1100], domain[1100];
	static char msg[DB_ROW_SESSION_WIRE_VALUES * (PRIV_DB_VALUE_MAX + 2)];
	struct netaddr p = r->client;
	const char *v[DB_SESSION_FIELD_COUNT] = { NULL };
	int len;

	if (!db.enabled)
		return;
	snprintf(id, sizeof(id), "%010llx", (unsigned long long)r->id);
	db_row_time(started, sizeof(started), -r->duration_ms);
	db_row_time(ended, sizeof(ended), 0);
	netaddr_format(&r->client, client, sizeof(client));
	netaddr_mask(&p, p.family == AF_INET ? 24 : 64);
	netaddr_format(&p, prefix, sizeof(prefix));
	snprintf(prefix + strlen(prefix), 8, "/%d", p.family == AF_INET ? 24 : 64);
	snprintf(rcpts, sizeof(rcpts), "%zu", r->rcpts);
	snprintf(messages, sizeof(messages), "%u", r->messages);
	snprintf(reasons, sizeof(reasons), "{%s}", r->reason_list);
	snprintf(score, sizeof(score), "%d", r->dnsbl_score);
	snprintf(bytes, sizeof(bytes), "%llu", (unsigned long long)r->bytes);
	snprintf(duration, sizeof(duration), "%lld", (long long)r->duration_ms);

	/* The appliance (DB_SESSION_APPLIANCE) is the privileged side's to fill. */
	v[DB_SESSION_ID] = id;
	v[DB_SESSION_STARTED] = started;
	v[DB_SESSION_ENDED] = ended;
	v[DB_SESSION_TIER] = tier_role_name(r->tier);
	v[DB_SESSION_CLIENT] = client;
	v[DB_SESSION_PREFIX] = prefix;
	v[DB_SESSION_RDNS] = r->rdns[0] ? utf8_clean(rdns, sizeof(rdns), r->rdns) : NULL;
	v[DB_SESSION_FCRDNS] = r->fcrdns ? "true" : "false";
	v[DB_SESSION_HELO] = r->helo[0] ? utf8_clean(helo, sizeof(helo), r->helo) : NULL;
	v[DB_SESSION_MAIL_FROM] = r->mail_from[0] ? utf8_clean(from, sizeof(from), r->mail_from) : NULL;
	v[DB_SESSION_RCPT_COUNT] = rcpts;
	v[DB_SESSION_FIRST_RCPT] = r->first_rcpt[0] ? utf8_clean(rcpt, sizeof(rcpt), r->first_rcpt) : NULL;
	v[DB_SESSION_MESSAGES] = messages;
	v[DB_SESSION_VERDICT] = verdict_name(r->verdict);
	v[DB_SESSION_REASONS] = reasons;
	v[DB_SESSION_DNSBL_SCORE] = score;
	v[DB_SESSION_BYTES] = bytes;
	v[DB_SESSION_DURATION_MS] = duration;
	v[DB_SESSION_BACKEND_REPLY] = r->backend_reply[0] ? utf8_clean(reply, sizeof(reply), r->backend_reply) : NULL;
	v[DB_SESSION_RDNS_DOMAIN] = r->fcrdns ? utf8_clean(domain, sizeof(domain), r->rdns_domain) : NULL;
	len = db_row_encode(DB_ROW_SESSION, v, msg, sizeof(msg));
	if (len == -1 || priv_to_privileged(PRIV_MSG_DB_SESSION, msg, (size_t)len) == -1) {
		db.dropped++;
		db.sessions_dropped++;
	}
}

/* db_news - history changed: tell the peers through the contacts table. */
static void
db_news(const struct history_news *n)
{
	char contact[48] = "", pending[48] = "", pass[48] = "", block[48] = "";
	char msg[DB_ROW_CONTACT_WIRE_VALUES * (PRIV_DB_VALUE_MAX + 2)];
	const char *v[DB_CONTACT_FIELD_COUNT] = { NULL };
	int len;

	if (!db.enabled)
		return;
	if (n->tier >= 0)
		db_row_time(contact, sizeof(contact), 0);
	if (n->pending_set)
		db_row_time(pending, sizeof(pending), 0);
	if (n->pass_ms > 0)
		db_row_time(pass, sizeof(pass), n->pass_ms);
	if (n->block_ms > 0)
		db_row_time(block, sizeof(block), n->block_ms);
	v[DB_CONTACT_KEY] = n->key;
	v[DB_CONTACT_PRIMARY] = n->tier == TIER_PRIMARY ? contact : NULL;
	v[DB_CONTACT_SECONDARY] = n->tier == TIER_SECONDARY ? contact : NULL;
	v[DB_CONTACT_BAIT] = n->tier == TIER_BAIT ? contact : NULL;
	v[DB_CONTACT_PENDING] = n->pending_set ? pending : NULL;
	v[DB_CONTACT_CLEAR_PENDING] = n->pending_clear ? "true" : "false";
	v[DB_CONTACT_PASS] = n->pass_ms > 0 ? pass : NULL;
	v[DB_CONTACT_BLOCK] = n->block_ms > 0 ? block : NULL;
	v[DB_CONTACT_BLOCK_REASON] = n->block_ms > 0 ? reason_name(n->block_reason) : NULL;
	len = db_row_encode(DB_ROW_CONTACT, v, msg, sizeof(msg));
	if (len == -1 || priv_to_privileged(PRIV_MSG_DB_CONTACT, msg, (size_t)len) == -1)
		db.dropped++;
}

/* heartbeat_cb - once a minute: our health for the appliances table (the parent adds the rest). */
static void
heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
	struct priv_db_heartbeat m = { .shedding = mxd->shedding, .backend_down = !mxd->backend_up };
	struct timeval tv = { DB_HEARTBEAT_EVERY_S, 0 };

	if (db.enabled)
		priv_to_privileged(PRIV_MSG_DB_HEARTBEAT, &m, sizeof(m));
	evtimer_add(db.heartbeat_timer, &tv);
}

int
db_start(const struct config *c)
{
	priv_on(PRIV_MSG_DB_ROW, row_cb);
	priv_on(PRIV_MSG_DB_DONE, done_cb);
	priv_on(PRIV_MSG_DB_STATUS, status_cb);
	priv_on(PRIV_MSG_DB_LISTINGS, listings_cb);
	priv_on(PRIV_MSG_DB_REPUTATION, reputation_cb);
	if (c->database[0] == '\0')
		return 0;
	/* Until the privileged side reports, assume it writes: rows sent meanwhile are not lost. */
	db.enabled = true;
	history_set_news_hook(db_news);
	db.heartbeat_timer = evtimer_new(mxd->base, heartbeat_cb, NULL);
	if (db.heartbeat_timer == NULL)
		fatalx("database: out of memory");
	heartbeat_cb(-1, 0, NULL);
	return 0;
}

void
db_reconfigure(const struct config *c)
{
	/* The privileged side owns the connection; a changed database is its "restart required". */
}

void
db_stop(void)
{
	history_set_news_hook(NULL);
	while (!TAILQ_EMPTY(&db.lookups)) {
		struct db_lookup *l = TAILQ_FIRST(&db.lookups);

		lookup_tell(l);
		lookup_free(l);
	}
	if (db.heartbeat_timer) {
		event_free(db.heartbeat_timer);
		db.heartbeat_timer = NULL;
	}
	db.enabled = false;
	free(db.rep_good);
	free(db.rep_bad);
	db.rep_good = db.rep_bad = NULL;
	db.nrep_good = db.nrep_bad = 0;
	free(db.listings);
	db.listings = NULL;
	db.nlistings = 0;
}

void
db_get_stats(struct db_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->connected = db.status.connected != 0;
	out->written = db.status.written;
	out->dropped = db.status.dropped + db.dropped;
	out->sessions_dropped = db.status.sessions_dropped + db.sessions_dropped;
	out->errors = db.status.errors;
	out->reconnects = db.status.reconnects;
	out->reads_late = db.reads_late;
	out->reads_unwaited = db.reads_unwaited;
	out->queued = (size_t)db.status.queued;
}
