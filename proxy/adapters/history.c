#include "history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "daemon.h"
#include "hash.h"
#include "log.h"

#define HISTORY_BUCKETS		65536
#define HISTORY_SWEEP_MS	1000
#define HISTORY_KEY_MAX		300

enum key_kind {
	KEY_ADDRESS = 0,
	KEY_PREFIX,
	KEY_DOMAIN,
	KEY_KINDS
};

struct history_entry {
	TAILQ_ENTRY(history_entry) lru;
	struct history_entry	*next;
	char			 key[HISTORY_KEY_MAX];
	int64_t			 last_contact[TIER_COUNT];	/* 0 = never */
	int64_t			 pending_since;			/* 0 = none */
	int64_t			 pass_until;
	bool			 pass_by_operator;	/* the pass is an operator's allow (mxtierctl allow), not earned */
	int64_t			 block_until;
	unsigned		 block_count;
	unsigned		 hit_and_run;
	enum reason		 block_reason;
};

/* A pending retry to sweep: retry_window is one value, so they expire in FIFO order. */
struct pending_retry {
	TAILQ_ENTRY(pending_retry) queue;
	char			 key[HISTORY_KEY_MAX];		/* the address */
	char			 siblings[2][HISTORY_KEY_MAX];	/* its prefix and domain: a retry there answers it too */
	int			 nsiblings;
	int64_t			 since;
};

static struct {
	struct history_entry	*buckets[HISTORY_BUCKETS];
	TAILQ_HEAD(, history_entry) lru;
	TAILQ_HEAD(, pending_retry) pending;
	size_t			 entries, pending_count;
	struct event		*sweep_timer;
} hist = { .lru = TAILQ_HEAD_INITIALIZER(hist.lru), .pending = TAILQ_HEAD_INITIALIZER(hist.pending) };

static history_listing_hook listing_hook;
static history_news_hook news_hook;

void
history_set_news_hook(history_news_hook hook)
{
	news_hook = hook;
}

static void
news(const char *key, int tier, bool pending_set, bool pending_clear, int64_t pass_ms, int64_t block_ms,
    enum reason why)
{
	struct history_news n = { key, tier, pending_set, pending_clear, pass_ms, block_ms, why };

	if (news_hook)
		news_hook(&n);
}

void
history_set_listing_hook(history_listing_hook hook)
{
	listing_hook = hook;
}

/* notify_listing - tell the kernel sets about an address/prefix key ("a:..." or "p:.../64"). */
static void
notify_listing(const char *key, int64_t ttl_ms, bool block)
{
	char text[HISTORY_KEY_MAX];
	char *slash;
	struct netaddr a;
	unsigned prefix_len;

	if (listing_hook == NULL || (key[0] != 'a' && key[0] != 'p'))
		return;
	snprintf(text, sizeof(text), "%s", key + 2);
	slash = strchr(text, '/');
	if (slash)
		*slash = '\0';
	if (netaddr_parse(text, &a) == -1)
		return;
	prefix_len = slash ? (unsigned)atoi(slash + 1) : (a.family == AF_INET ? 32 : 128);
	listing_hook(&a, prefix_len, ttl_ms, block);
}

static size_t
key_hash(const char *key)
{
	return hash_fnv1a(key, strlen(key)) & (HISTORY_BUCKETS - 1);
}

/* client_keys - the keys a client is known by; returns how many (domain only when confirmed). */
static int
client_keys(const struct history_client *c, char keys[KEY_KINDS][HISTORY_KEY_MAX])
{
	struct netaddr a = c->addr, p;
	char text[NETADDR_STRLEN];
	int n = 0;

	netaddr_normalize(&a);
	snprintf(keys[n++], HISTORY_KEY_MAX, "a:%s", netaddr_format(&a, text, sizeof(text)));
	p = a;
	netaddr_mask(&p, a.family == AF_INET ? 24 : 64);
	snprintf(keys[n++], HISTORY_KEY_MAX, "p:%s/%d", netaddr_format(&p, text, sizeof(text)),
	    a.family == AF_INET ? 24 : 64);
	if (c->domain && c->domain[0])
		snprintf(keys[n++], HISTORY_KEY_MAX, "d:%s", c->domain);
	return n;
}

static struct history_entry *
entry_find(const char *key)
{
	struct history_entry *e;

	for (e = hist.buckets[key_hash(key)]; e; e = e->next)
		if (strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

static void
entry_remove(struct history_entry *e)
{
	struct history_entry **link = &hist.buckets[key_hash(e->key)];

	while (*link && *link != e)
		link = &(*link)->next;
	if (*link)
		*link = e->next;
	TAILQ_REMOVE(&hist.lru, e, lru);
	hist.entries--;
	free(e);
}

/* entry_get - find or create; touching an entry makes it the most recently used. */
static struct history_entry *
entry_get(const char *key)
{
	struct history_entry *e = entry_find(key);

	if (e) {
		TAILQ_REMOVE(&hist.lru, e, lru);
		TAILQ_INSERT_TAIL(&hist.lru, e, lru);
		return e;
	}
	while (hist.entries >= (size_t)mxd->config->history_size && !TAILQ_EMPTY(&hist.lru)) {
		entry_remove(TAILQ_FIRST(&hist.lru));
		mxd->stats.history_evictions++;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->next = hist.buckets[key_hash(key)];
	hist.buckets[key_hash(key)] = e;
	TAILQ_INSERT_TAIL(&hist.lru, e, lru);
	hist.entries++;
	return e;
}

size_t
history_entries(void)
{
	return hist.entries;
}

void
history_record_contact(const struct history_client *c, enum tier_role tier)
{
	char keys[KEY_KINDS][HISTORY_KEY_MAX];
	int n = client_keys(c, keys);
	int64_t now = now_ms();

	for (int i = 0; i < n; i++) {
		struct history_entry *e = entry_get(keys[i]);

		if (e)
			e->last_contact[tier] = now;
		news(keys[i], tier, false, false, 0, 0, REASON_COUNT);
	}
}

bool
history_lower_tier_contact(const struct history_client *c, int64_t window_ms)
{
	char keys[KEY_KINDS][HISTORY_KEY_MAX];
	int n = client_keys(c, keys);
	int64_t now = now_ms();

	for (int i = 0; i < n; i++) {
		struct history_entry *e = entry_find(keys[i]);

		if (e == NULL)
			continue;
		if (e->last_contact[TIER_PRIMARY] && now - e->last_contact[TIER_PRIMARY] <= window_ms)
			return true;
		if (e->last_contact[TIER_SECONDARY] && now - e->last_contact[TIER_SECONDARY] <= window_ms)
			return true;
	}
	return false;
}

void
history_set_pending(const struct history_client *c)
{
	char keys[KEY_KINDS][HISTORY_KEY_MAX];
	int n = client_keys(c, keys);
	int64_t now = now_ms(), window = mxd->config->retry_window;

	for (int i = 0; i < n; i++) {
		struct history_entry *e = entry_get(keys[i]);

		if (e == NULL)
			continue;
		/* Keep the first deferral's time: a later attempt is measured from it. */
		if (e->pending_since && now - e->pending_since < window)
			continue;
		e->pending_since = now;
		news(keys[i], -1, true, false, 0, 0, REASON_COUNT);
		if (i == KEY_ADDRESS && hist.pending_count < (size_t)mxd->config->history_size) {
			struct pending_retry *p = calloc(1, sizeof(*p));

			if (p == NULL)
				continue;
			memcpy(p->key, keys[i], sizeof(p->key));
			for (int j = 1; j < n; j++)
				memcpy(p->siblings[p->nsiblings++], keys[j], HISTORY_KEY_MAX);
			p->since = now;
			TAILQ_INSERT_TAIL(&hist.pending, p, queue);
			hist.pending_count++;
		}
	}
}

int64_t
history_pending_age(const struct history_client *c)
{
	char keys[KEY_KINDS][HISTORY_KEY_MAX];
	int n = client_keys(c, keys);
	int64_t now = now_ms(), oldest = -1;

	for (int i = 0; i < n; i++) {
		struct history_entry *e = entry_find(keys[i]);
		int64_t age;

		/* A neighbour's deferral counts only for a client whose name proves a mail pool (c->domain). */
		if (i == KEY_PREFIX && !(c->domain && c->domain[0]))
			continue;
		if (e == NULL || e->pending_since == 0)
			continue;
		age = now - e->pending_since;
		if (age < mxd->config->retry_window && age > oldest)
			oldest = age;
	}
	return oldest;
}

void
history_grant_pass(const struct history_client *c)
{
	char keys[KEY_KINDS][HISTORY_KEY_MAX];
	int n = client_keys(c, keys);
	int64_t until = now_ms() + mxd->config->pass_ttl;

	for (int i = 0; i < n; i++) {
		struct history_entry *e = entry_get(keys[i]);

		if (e == NULL)
			continue;
		e->pending_since = 0;
		/*
		 * The pass goes to the address and its confirmed domain, not the
		 * whole /24 or /64: one retrying MTA must not wave its neighbours
		 * through for weeks. Their pending retries still match by prefix.
		 */
		if (i != KEY_PREFIX && until > e->pass_until) {
			e->pass_until = until;
			e->pass_by_operator = false;
		}
		if (i == KEY_ADDRESS)
			notify_listing(keys[i], mxd->config->pass_ttl, false);
		news(keys[i], -1, false, true, i != KEY_PREFIX ? mxd->config->pass_ttl : 0, 0, REASON_COUNT);
	}
}

bool
history_allowed(const struct history_client *c)
{
	char keys[KEY_KINDS][HISTORY_KEY_MAX];
	struct history_entry *e;

	client_keys(c, keys);
	e = entry_find(keys[KEY_ADDRESS]);
	return e && e->pass_by_operator && e->pass_until > now_ms();
}

bool
history_passed(const struct history_client *c)
{
	char keys[KEY_KINDS][HISTORY_KEY_MAX];
	int n = client_keys(c, keys);
	int64_t now = now_ms();

	for (int i = 0; i < n; i++) {
		struct history_entry *e = entry_find(keys[i]);

		if (e && e->pass_until > now)
			return true;
	}
	return false;
}

/*
 * history_revoke_pass - a client that earned or holds a pass broke a hard
 * protocol rule (pregreet, pipelining, ...): the pass of its address and
 * domain ends, its kernel fast path with it. Ratware that walks the MX list
 * must not keep what its retry earned.
 */
void
history_revoke_pass(const struct history_client *c)
{
	char keys[KEY_KINDS][HISTORY_KEY_MAX];
	int n = client_keys(c, keys);
	int64_t now = now_ms();

	for (int i = 0; i < n; i++) {
		struct history_entry *e = entry_find(keys[i]);

		if (i == KEY_PREFIX || e == NULL || e->pass_until <= now)
			continue;
		e->pass_until = 0;
		log_info("pass of %s revoked", keys[i] + 2);
		if (i == KEY_ADDRESS)
			notify_listing(keys[i], 0, false);
	}
}

int
history_keys(const struct history_client *c, char keys[3][300])
{
	return client_keys(c, keys);
}

/* is_block_key - what block_key makes: an IPv4 address key, or an IPv6 /64 key. */
static bool
is_block_key(const char *key)
{
	bool v6 = strchr(key + 2, ':') != NULL;

	return (key[0] == 'a' && !v6) || (key[0] == 'p' && v6);
}

void
history_merge(const char *key, const int64_t contact_age[TIER_COUNT], int64_t pending_age, int64_t pass_left,
    int64_t block_left, enum reason block_reason)
{
	struct history_entry *e = entry_get(key);
	int64_t now = now_ms();

	if (e == NULL)
		return;
	for (int t = 0; t < TIER_COUNT; t++)
		if (contact_age[t] >= 0 && now - contact_age[t] > e->last_contact[t])
			e->last_contact[t] = now - contact_age[t];
	/* The earliest deferral anyone made is the one a retry is measured from. */
	if (pending_age >= 0 && (e->pending_since == 0 || now - pending_age < e->pending_since))
		e->pending_since = now - pending_age;
	if (pass_left > 0 && now + pass_left > e->pass_until)
		e->pass_until = now + pass_left;
	if (block_left > 0 && now + block_left > e->block_until) {
		e->block_until = now + block_left;
		e->block_reason = block_reason;
		/*
		 * A block made before a restart, or by another appliance, goes
		 * into this one's kernel set too: the sets start empty, and the
		 * source would otherwise come back through them unseen.
		 */
		if (is_block_key(key))
			notify_listing(key, block_left, true);
	}
}

/* block_key - the address, or for IPv6 its /64: one host there can take any address of it. */
static void
block_key(const struct history_client *c, char *key)
{
	char keys[KEY_KINDS][HISTORY_KEY_MAX];
	struct netaddr a = c->addr;

	netaddr_normalize(&a);
	client_keys(c, keys);
	memcpy(key, keys[a.family == AF_INET ? KEY_ADDRESS : KEY_PREFIX], HISTORY_KEY_MAX);
}

/* drop_pass - a client being blocked loses its pass, and its fast path in the kernel with it. */
static void
drop_pass(const char *key)
{
	struct history_entry *e = entry_find(key);

	if (e && e->pass_until > now_ms()) {
		e->pass_until = 0;
		notify_listing(key, 0, false);
	}
}

static int64_t
entry_block(struct history_entry *e, enum reason why)
{
	const struct config *cfg = mxd->config;
	int64_t ttl = cfg->block_ttl;

	/* Repeat offenders: double the TTL each time, up to block_ttl_max. */
	for (unsigned i = 0; i < e->block_count && ttl < cfg->block_ttl_max; i++)
		ttl *= 2;
	if (ttl > cfg->block_ttl_max)
		ttl = cfg->block_ttl_max;
	e->block_count++;
	e->block_until = now_ms() + ttl;
	e->block_reason = why;
	e->pass_until = 0;
	return ttl;
}

static void
drop_pass_of(const struct history_client *c)
{
	char keys[KEY_KINDS][HISTORY_KEY_MAX];

	client_keys(c, keys);
	drop_pass(keys[KEY_ADDRESS]);
}

int64_t
history_block(const struct history_client *c, enum reason why)
{
	char key[HISTORY_KEY_MAX];
	struct history_entry *e;
	int64_t ttl;

	block_key(c, key);
	drop_pass_of(c);
	if ((e = entry_get(key)) == NULL)
		return 0;
	ttl = entry_block(e, why);
	log_info("block %s for %llds, reason %s (offence %u)", key + 2, (long long)(ttl / 1000), reason_name(why),
	    e->block_count);
	notify_listing(key, ttl, true);
	news(key, -1, false, false, 0, ttl, why);
	return ttl;
}

void
history_block_manual(const struct history_client *c, int64_t ttl_ms)
{
	char key[HISTORY_KEY_MAX];
	struct history_entry *e;

	block_key(c, key);
	drop_pass_of(c);
	if ((e = entry_get(key)) == NULL)
		return;
	e->block_until = now_ms() + ttl_ms;
	e->block_reason = REASON_MANUAL;
	e->pass_until = 0;
	log_info("block %s for %llds, reason manual", key + 2, (long long)(ttl_ms / 1000));
	notify_listing(key, ttl_ms, true);
	news(key, -1, false, false, 0, ttl_ms, REASON_MANUAL);
}

bool
history_unblock(const struct history_client *c)
{
	char key[HISTORY_KEY_MAX];
	struct history_entry *e;

	block_key(c, key);
	if ((e = entry_find(key)) == NULL || e->block_until <= now_ms())
		return false;
	e->block_until = 0;
	e->block_count = 0;
	log_info("unblock %s", key + 2);
	notify_listing(key, 0, true);
	return true;
}

void
history_allow(const struct history_client *c, int64_t ttl_ms)
{
	char keys[KEY_KINDS][HISTORY_KEY_MAX];
	struct history_entry *e;

	/* An allow lifts a block, in the kernel too. */
	if (history_blocked(c, &(enum reason){ REASON_COUNT }))
		history_unblock(c);
	client_keys(c, keys);
	if ((e = entry_get(keys[KEY_ADDRESS])) == NULL)
		return;
	e->pass_until = now_ms() + ttl_ms;
	e->pass_by_operator = true;
	e->block_until = 0;
	e->pending_since = 0;
	log_info("allow %s for %llds", keys[KEY_ADDRESS] + 2, (long long)(ttl_ms / 1000));
	notify_listing(keys[KEY_ADDRESS], ttl_ms, false);
}

bool
history_unallow(const struct history_client *c)
{
	char keys[KEY_KINDS][HISTORY_KEY_MAX];
	struct history_entry *e;

	client_keys(c, keys);
	if ((e = entry_find(keys[KEY_ADDRESS])) == NULL || e->pass_until <= now_ms())
		return false;
	e->pass_until = 0;
	notify_listing(keys[KEY_ADDRESS], 0, false);
	return true;
}

void
history_foreach_block(history_visit_fn fn, void *arg)
{
	struct history_entry *e;
	int64_t now = now_ms();

	TAILQ_FOREACH(e, &hist.lru, lru)
		if (e->block_until > now)
			fn(e->key + 2, e->block_until - now, e->block_reason, e->block_count, arg);
}

void
history_foreach_pass(history_visit_fn fn, void *arg)
{
	struct history_entry *e;
	int64_t now = now_ms();

	TAILQ_FOREACH(e, &hist.lru, lru)
		if (e->pass_until > now)
			fn(e->key + 2, e->pass_until - now, REASON_PASSED, 0, arg);
}

bool
history_blocked(const struct history_client *c, enum reason *why)
{
	char key[HISTORY_KEY_MAX];
	struct history_entry *e;

	block_key(c, key);
	e = entry_find(key);
	if (e == NULL || e->block_until <= now_ms())
		return false;
	*why = e->block_reason;
	return true;
}

/*
 * answered_by_sibling - a retry from the same /24 or confirmed domain
 * clears the sibling key's pending retry (history_grant_pass); if that
 * happened after this deferral, the pool did retry.
 */
static bool
answered_by_sibling(const struct pending_retry *p)
{
	for (int i = 0; i < p->nsiblings; i++) {
		struct history_entry *e = entry_find(p->siblings[i]);

		if (e && (e->pending_since == 0 || e->pending_since > p->since))
			return true;
	}
	return false;
}

/* history_sweep - pending retries past retry_window that nobody answered are hit-and-run. */
static void
history_sweep(evutil_socket_t fd, short what, void *arg)
{
	int64_t now = now_ms(), window = mxd->config->retry_window;
	struct timeval tv = { HISTORY_SWEEP_MS / 1000, (HISTORY_SWEEP_MS % 1000) * 1000 };
	struct pending_retry *p;

	while ((p = TAILQ_FIRST(&hist.pending)) != NULL && now - p->since >= window) {
		struct history_entry *e = entry_find(p->key);

		TAILQ_REMOVE(&hist.pending, p, queue);
		hist.pending_count--;
		if (e && e->pending_since == p->since && answered_by_sibling(p)) {
			e->pending_since = 0;
		} else if (e && e->pending_since == p->since) {
			e->pending_since = 0;
			e->hit_and_run++;
			mxd->stats.reasons[REASON_HIT_AND_RUN]++;
			log_info("hit-and-run %s: deferred %llds ago, never retried (%u of %lld)", p->key + 2,
			    (long long)((now - p->since) / 1000), e->hit_and_run, (long long)mxd->config->hit_and_run_limit);
			if (e->hit_and_run >= (unsigned)mxd->config->hit_and_run_limit) {
				struct history_client c = { .domain = NULL };

				e->hit_and_run = 0;
				if (netaddr_parse(p->key + 2, &c.addr) == 0)
					history_block(&c, REASON_HIT_AND_RUN);
			}
		}
		free(p);
	}
	evtimer_add(hist.sweep_timer, &tv);
}

int
history_init(void)
{
	struct timeval tv = { HISTORY_SWEEP_MS / 1000, (HISTORY_SWEEP_MS % 1000) * 1000 };

	hist.sweep_timer = evtimer_new(mxd->base, history_sweep, NULL);
	if (hist.sweep_timer == NULL)
		return -1;
	evtimer_add(hist.sweep_timer, &tv);
	return 0;
}

void
history_shutdown(void)
{
	struct pending_retry *p;

	if (hist.sweep_timer) {
		event_free(hist.sweep_timer);
		hist.sweep_timer = NULL;
	}
	while ((p = TAILQ_FIRST(&hist.pending)) != NULL) {
		TAILQ_REMOVE(&hist.pending, p, queue);
		free(p);
	}
	hist.pending_count = 0;
	while (!TAILQ_EMPTY(&hist.lru))
		entry_remove(TAILQ_FIRST(&hist.lru));
}
