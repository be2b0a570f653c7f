/*
 * dns.c - evdns lookups with a cache that honours TTLs within
 * dns_cache_min_ttl..dns_cache_max_ttl. Definite answers (found, NXDOMAIN)
 * are cached; timeouts and server failures are not: they mean "unknown".
 */
#include "dns.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>
#include <sys/queue.h>

#include "daemon.h"
#include "hash.h"
#include "log.h"

#define DNS_CACHE_BUCKETS 8192

struct cache_entry {
	TAILQ_ENTRY(cache_entry) lru;
	struct cache_entry	*next;		/* hash chain */
	char			 key[300];
	int64_t			 expires_ms;
	struct dns_answer	 answer;
};

struct dns_request {
	dns_callback		 cb;
	void			*arg;
	char			 key[300];
	struct dns_answer	 answer;	/* for cache hits, delivered from the loop */
	struct event		*deliver;
};

static struct {
	struct evdns_base	*base;
	struct cache_entry	*buckets[DNS_CACHE_BUCKETS];
	TAILQ_HEAD(, cache_entry) lru;
	size_t			 entries;
	int64_t			 min_ttl_ms, max_ttl_ms;
	size_t			 max_entries;
} dns = { .lru = TAILQ_HEAD_INITIALIZER(dns.lru) };

static size_t
key_hash(const char *key)
{
	return hash_fnv1a(key, strlen(key)) & (DNS_CACHE_BUCKETS - 1);
}

static void
cache_unlink(struct cache_entry *e)
{
	struct cache_entry **link = &dns.buckets[key_hash(e->key)];

	while (*link && *link != e)
		link = &(*link)->next;
	if (*link)
		*link = e->next;
	TAILQ_REMOVE(&dns.lru, e, lru);
	dns.entries--;
	free(e);
}

static struct cache_entry *
cache_find(const char *key)
{
	struct cache_entry *e;

	for (e = dns.buckets[key_hash(key)]; e; e = e->next) {
		if (strcmp(e->key, key) != 0)
			continue;
		if (e->expires_ms <= now_ms()) {
			cache_unlink(e);
			return NULL;
		}
		return e;
	}
	return NULL;
}

static void
cache_store(const char *key, const struct dns_answer *a, int ttl_seconds)
{
	struct cache_entry *e;
	int64_t ttl = (int64_t)ttl_seconds * 1000;

	if (dns.max_entries == 0 || a->status == DNS_UNKNOWN)
		return;
	if (ttl < dns.min_ttl_ms)
		ttl = dns.min_ttl_ms;
	if (ttl > dns.max_ttl_ms)
		ttl = dns.max_ttl_ms;
	if (ttl == 0)
		return;
	if ((e = cache_find(key)) != NULL)
		cache_unlink(e);
	/* Bounded: the least recently stored entry goes first. */
	while (dns.entries >= dns.max_entries && !TAILQ_EMPTY(&dns.lru)) {
		cache_unlink(TAILQ_FIRST(&dns.lru));
		mxd->stats.dns_cache_evictions++;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return;
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->expires_ms = now_ms() + ttl;
	e->answer = *a;
	e->next = dns.buckets[key_hash(key)];
	dns.buckets[key_hash(key)] = e;
	TAILQ_INSERT_TAIL(&dns.lru, e, lru);
	dns.entries++;
}

int
dns_init(const struct config *c)
{
	char value[32];

	dns.min_ttl_ms = c->dns_cache_min_ttl;
	dns.max_ttl_ms = c->dns_cache_max_ttl;
	dns.max_entries = (size_t)c->dns_cache_size;
	if (dns.base) {
		/* Reload: answers still in flight fail with DNS_ERR_SHUTDOWN and are delivered as unknown. */
		evdns_base_free(dns.base, 1);
		dns.base = NULL;
	}
	if (c->dns_servers.count == 0) {
		dns.base = evdns_base_new(mxd->base, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	} else {
		dns.base = evdns_base_new(mxd->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
		for (size_t i = 0; dns.base && i < c->dns_servers.count; i++) {
			if (evdns_base_nameserver_ip_add(dns.base, c->dns_servers.items[i]) != 0) {
				log_warn("dns: cannot use name server %s", c->dns_servers.items[i]);
				evdns_base_free(dns.base, 0);
				dns.base = NULL;
			}
		}
	}
	if (dns.base == NULL) {
		log_warn("dns: no resolver: DNS checks will answer \"unknown\"");
		return -1;
	}
	/* Two tries within dns_timeout, so one lost datagram is not an unknown. */
	snprintf(value, sizeof(value), "%.3f", c->dns_timeout / 2000.0);
	evdns_base_set_option(dns.base, "timeout:", value);
	evdns_base_set_option(dns.base, "attempts:", "2");
	evdns_base_set_option(dns.base, "randomize-case:", "0");
	evdns_base_set_option(dns.base, "max-inflight:", "1024");
	return 0;
}

void
dns_shutdown(void)
{
	if (dns.base) {
		evdns_base_free(dns.base, 1);
		dns.base = NULL;
	}
	while (!TAILQ_EMPTY(&dns.lru))
		cache_unlink(TAILQ_FIRST(&dns.lru));
}

static void
request_finish(struct dns_request *r, const struct dns_answer *a)
{
	if (r->cb)
		r->cb(a, r->arg);
	if (r->deliver)
		event_free(r->deliver);
	free(r);
}

static void
evdns_answer_cb(int result, char type, int count, int ttl, void *addresses, void *arg)
{
	struct dns_request *r = arg;
	struct dns_answer a;

	memset(&a, 0, sizeof(a));
	if (result == DNS_ERR_NONE && count > 0) {
		a.status = DNS_FOUND;
		if (type == DNS_PTR) {
			snprintf(a.name, sizeof(a.name), "%s", *(char **)addresses);
			a.count = 1;
		} else {
			for (int i = 0; i < count && a.count < DNS_ANSWER_ADDRS_MAX; i++) {
				struct netaddr *n = &a.addrs[a.count++];

				n->family = type == DNS_IPv4_A ? AF_INET : AF_INET6;
				memcpy(n->bytes, (uint8_t *)addresses + i * (type == DNS_IPv4_A ? 4 : 16),
				    type == DNS_IPv4_A ? 4 : 16);
			}
		}
	} else if (result == DNS_ERR_NOTEXIST || result == DNS_ERR_NODATA || (result == DNS_ERR_NONE && count == 0)) {
		a.status = DNS_NONE;
	} else {
		a.status = DNS_UNKNOWN;
		mxd->stats.dns_unknown++;
	}
	cache_store(r->key, &a, ttl);
	request_finish(r, &a);
}

static void
deliver_cached_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_request *r = arg;
	struct dns_answer a = r->answer;

	request_finish(r, &a);
}

/* request_new - a cached answer is delivered from the loop; else NULL *cached. */
static struct dns_request *
request_new(const char *key, dns_callback cb, void *arg, bool *cached)
{
	struct dns_request *r = calloc(1, sizeof(*r));
	struct cache_entry *e;

	*cached = false;
	if (r == NULL)
		return NULL;
	r->cb = cb;
	r->arg = arg;
	snprintf(r->key, sizeof(r->key), "%s", key);
	if ((e = cache_find(key)) != NULL) {
		struct timeval now = { 0, 0 };

		mxd->stats.dns_cache_hits++;
		r->answer = e->answer;
		r->deliver = evtimer_new(mxd->base, deliver_cached_cb, r);
		if (r->deliver == NULL) {
			free(r);
			return NULL;
		}
		evtimer_add(r->deliver, &now);
		*cached = true;
	}
	return r;
}

/* request_fail_later - no resolver: deliver "unknown" from the loop all the same. */
static struct dns_request *
request_fail_later(struct dns_request *r)
{
	struct timeval now = { 0, 0 };

	r->answer.status = DNS_UNKNOWN;
	r->deliver = evtimer_new(mxd->base, deliver_cached_cb, r);
	if (r->deliver == NULL) {
		free(r);
		return NULL;
	}
	evtimer_add(r->deliver, &now);
	return r;
}

struct dns_request *
dns_lookup_ptr(const struct netaddr *addr, dns_callback cb, void *arg)
{
	char key[300], text[NETADDR_STRLEN];
	struct dns_request *r;
	bool cached;

	snprintf(key, sizeof(key), "PTR:%s", netaddr_format(addr, text, sizeof(text)));
	if ((r = request_new(key, cb, arg, &cached)) == NULL || cached)
		return r;
	if (dns.base == NULL)
		return request_fail_later(r);
	mxd->stats.dns_queries++;
	if (addr->family == AF_INET) {
		struct in_addr in;

		memcpy(&in, addr->bytes, 4);
		if (evdns_base_resolve_reverse(dns.base, &in, DNS_QUERY_NO_SEARCH, evdns_answer_cb, r) == NULL)
			return request_fail_later(r);
	} else {
		struct in6_addr in6;

		memcpy(&in6, addr->bytes, 16);
		if (evdns_base_resolve_reverse_ipv6(dns.base, &in6, DNS_QUERY_NO_SEARCH, evdns_answer_cb, r) == NULL)
			return request_fail_later(r);
	}
	return r;
}

struct dns_request *
dns_lookup_addr(const char *name, int family, dns_callback cb, void *arg)
{
	char key[300];
	struct dns_request *r;
	bool cached;
	struct evdns_request *req;

	snprintf(key, sizeof(key), "%s:%s", family == AF_INET ? "A" : "AAAA", name);
	for (char *p = key; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if ((r = request_new(key, cb, arg, &cached)) == NULL || cached)
		return r;
	if (dns.base == NULL)
		return request_fail_later(r);
	mxd->stats.dns_queries++;
	if (family == AF_INET)
		req = evdns_base_resolve_ipv4(dns.base, name, DNS_QUERY_NO_SEARCH, evdns_answer_cb, r);
	else
		req = evdns_base_resolve_ipv6(dns.base, name, DNS_QUERY_NO_SEARCH, evdns_answer_cb, r);
	if (req == NULL)
		return request_fail_later(r);
	return r;
}

void
dns_abandon(struct dns_request *r)
{
	if (r)
		r->cb = NULL;
}
