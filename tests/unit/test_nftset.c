/*
 * test_nftset.c - the kernel set writer.
 *
 * Without a kernel: nftset_build_batch -> parse back with libnftnl -> same
 * table, set, keys and timeouts (a table of labelled cases, up to 300
 * elements split across messages); addresses and timeouts nftset_add
 * refuses; the queue bound.
 *
 * Live (root and `ip netns` only, else skipped with a message): in a network
 * namespace of its own (always deleted) the test process setns()es itself,
 * loads the ruleset mxtierctl prints with `nft -f`, and drives the writer on
 * a real event loop: adds with timeouts, refreshes (also of an element
 * deleted behind its back), deletions, 300 elements, `nft flush ruleset`
 * followed by the writer's restore and re-seed, and a full set (ENFILE).
 */
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <event2/event.h>
#include <libmnl/libmnl.h>
#include <libnftnl/set.h>

#include "config.h"
#include "netaddr.h"
#include "nftset.h"
#include "ruleset.h"

/* ---- build -> parse round trip ---- */

#define RT_MAX 300

struct roundtrip_case {
	const char	*label;
	const char	*table;
	const char	*set;
	int		 family;
	const char	*addrs[8];		/* NULL-terminated; empty: generate `generated` IPv4 keys */
	int64_t		 timeouts[8];
	size_t		 generated;
	const char	*expect_keys[8];	/* normalised keys, same order */
	size_t		 expect_msgs;
};

static const struct roundtrip_case roundtrip_cases[] = {
	{ "IPv4, one element", "mxtier", "block4", AF_INET, { "192.0.2.1" }, { 60000 }, 0,
	    { "192.0.2.1" }, 1 },
	{ "IPv6 masked to its /64", "mxtier", "block6", AF_INET6, { "2001:db8:1:2:3:4:5:6" }, { 3600000 }, 0,
	    { "2001:db8:1:2::" }, 1 },
	{ "IPv6 already a /64 key", "mxtier", "trust6", AF_INET6, { "2001:db8:ffff:1::" }, { 1 }, 0,
	    { "2001:db8:ffff:1::" }, 1 },
	{ "IPv4-mapped IPv6 written as IPv4", "mxtier", "block4", AF_INET, { "::ffff:198.51.100.7" }, { 5000 }, 0,
	    { "198.51.100.7" }, 1 },
	{ "several elements, one without timeout", "other_table", "trust4", AF_INET,
	    { "192.0.2.1", "192.0.2.2", "::ffff:192.0.2.3", "203.0.113.255" }, { 1000, 0, 86400000, 7 }, 0,
	    { "192.0.2.1", "192.0.2.2", "192.0.2.3", "203.0.113.255" }, 1 },
	{ "256 elements fill exactly one message", "mxtier", "block4", AF_INET, { NULL }, { 0 }, 256, { NULL }, 1 },
	{ "300 elements split across two messages", "mxtier", "block4", AF_INET, { NULL }, { 0 }, 300, { NULL }, 2 },
	{ "no elements: BEGIN and END only", "mxtier", "block4", AF_INET, { NULL }, { 0 }, 0, { NULL }, 0 },
};

/* generated_key - the i-th generated element: 10.x.y.z, timeout 1000 + i ms. */
static void
generated_key(size_t i, struct netaddr *a, int64_t *timeout)
{
	memset(a, 0, sizeof(*a));
	a->family = AF_INET;
	a->bytes[0] = 10;
	a->bytes[1] = (uint8_t)(i >> 16);
	a->bytes[2] = (uint8_t)(i >> 8);
	a->bytes[3] = (uint8_t)i;
	*timeout = 1000 + (int64_t)i;
}

struct parsed_elem {
	uint8_t		key[16];
	uint32_t	klen;
	int64_t		timeout;	/* 0: attribute absent */
};

struct parse_ctx {
	struct parsed_elem	*elems;
	size_t			 n;
};

static int
collect_elem(struct nftnl_set_elem *e, void *data)
{
	struct parse_ctx *ctx = data;
	struct parsed_elem *p = &ctx->elems[ctx->n];
	uint32_t len = 0;
	const void *key = nftnl_set_elem_get(e, NFTNL_SET_ELEM_KEY, &len);

	if (ctx->n >= RT_MAX || key == NULL || len > sizeof(p->key))
		return -1;
	memcpy(p->key, key, len);
	p->klen = len;
	p->timeout = nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_TIMEOUT) ?
	    (int64_t)nftnl_set_elem_get_u64(e, NFTNL_SET_ELEM_TIMEOUT) : 0;
	ctx->n++;
	return 0;
}

static void
test_nftset_build_roundtrip(void **state)
{
	static char buf[64 * 1024];
	static struct netaddr keys[RT_MAX];
	static int64_t timeouts[RT_MAX];
	static struct parsed_elem parsed[RT_MAX];

	for (size_t c = 0; c < sizeof(roundtrip_cases) / sizeof(roundtrip_cases[0]); c++) {
		const struct roundtrip_case *tc = &roundtrip_cases[c];
		struct parse_ctx ctx = { .elems = parsed, .n = 0 };
		uint32_t seq = 1000, expect_seq = 1000;
		size_t n = 0, len, msgs = 0;
		unsigned klen = tc->family == AF_INET ? 4 : 16;
		bool began = false, ended = false;
		int rest;
		const struct nlmsghdr *nlh;

		if (tc->addrs[0] != NULL) {
			for (; n < 8 && tc->addrs[n] != NULL; n++) {
				if (netaddr_parse(tc->addrs[n], &keys[n]) == -1)
					fail_msg("[%s] bad test address %s", tc->label, tc->addrs[n]);
				timeouts[n] = tc->timeouts[n];
			}
		} else {
			for (; n < tc->generated; n++)
				generated_key(n, &keys[n], &timeouts[n]);
		}
		len = nftset_build_batch(buf, sizeof(buf), tc->table, tc->set, tc->family, keys, timeouts, n, &seq);
		EXPECT(tc->label, len > 0, "nftset_build_batch returned 0");
		if (len == 0)
			continue;
		EXPECT(tc->label, seq == 1000 + tc->expect_msgs + 2, "seq advanced to %u, expected %zu", seq,
		    1000 + tc->expect_msgs + 2);

		rest = (int)len;
		for (nlh = (const struct nlmsghdr *)buf; mnl_nlmsg_ok(nlh, rest); nlh = mnl_nlmsg_next(nlh, &rest)) {
			const struct nfgenmsg *nfg = mnl_nlmsg_get_payload(nlh);
			struct nftnl_set *s;
			size_t before = ctx.n;

			EXPECT(tc->label, nlh->nlmsg_seq == expect_seq, "message seq %u, expected %u", nlh->nlmsg_seq,
			    expect_seq);
			expect_seq++;
			if (nlh->nlmsg_type == NFNL_MSG_BATCH_BEGIN) {
				EXPECT(tc->label, !began && msgs == 0, "BEGIN not first");
				EXPECT(tc->label, ntohs(nfg->res_id) == NFNL_SUBSYS_NFTABLES, "BEGIN res_id %u",
				    ntohs(nfg->res_id));
				began = true;
				continue;
			}
			if (nlh->nlmsg_type == NFNL_MSG_BATCH_END) {
				ended = true;
				continue;
			}
			EXPECT(tc->label, began && !ended, "element message outside BEGIN/END");
			EXPECT(tc->label, nlh->nlmsg_type == ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM),
			    "message type 0x%x", nlh->nlmsg_type);
			EXPECT(tc->label, (nlh->nlmsg_flags & (NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK)) ==
			    (NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK), "flags 0x%x lack REQUEST|CREATE|ACK",
			    nlh->nlmsg_flags);
			EXPECT(tc->label, !(nlh->nlmsg_flags & NLM_F_EXCL), "NLM_F_EXCL set");
			EXPECT(tc->label, nfg->nfgen_family == NFPROTO_INET, "family %u", nfg->nfgen_family);
			msgs++;
			s = nftnl_set_alloc();
			if (s == NULL)
				fail_msg("out of memory");
			EXPECT(tc->label, nftnl_set_elems_nlmsg_parse(nlh, s) == 0, "libnftnl cannot parse message %zu",
			    msgs);
			EXPECT(tc->label, strcmp(nftnl_set_get_str(s, NFTNL_SET_TABLE), tc->table) == 0, "table %s",
			    unit_str(nftnl_set_get_str(s, NFTNL_SET_TABLE)));
			EXPECT(tc->label, strcmp(nftnl_set_get_str(s, NFTNL_SET_NAME), tc->set) == 0, "set %s",
			    unit_str(nftnl_set_get_str(s, NFTNL_SET_NAME)));
			EXPECT(tc->label, nftnl_set_elem_foreach(s, collect_elem, &ctx) == 0, "element walk failed");
			EXPECT(tc->label, ctx.n - before <= NFTSET_MSG_ELEMS, "%zu elements in one message",
			    ctx.n - before);
			nftnl_set_free(s);
		}
		EXPECT(tc->label, rest == 0, "%d trailing bytes", rest);
		EXPECT(tc->label, began && ended, "BEGIN %d END %d", began, ended);
		EXPECT(tc->label, msgs == tc->expect_msgs, "%zu element messages, expected %zu", msgs, tc->expect_msgs);
		EXPECT(tc->label, ctx.n == n, "%zu elements parsed, %zu built", ctx.n, n);
		for (size_t i = 0; i < ctx.n && i < n; i++) {
			struct netaddr want;
			int64_t want_timeout;
			char got_text[NETADDR_STRLEN], want_text[NETADDR_STRLEN];
			struct netaddr got = { .family = tc->family };

			if (tc->addrs[0] != NULL) {
				netaddr_parse(tc->expect_keys[i], &want);
				want_timeout = tc->timeouts[i];
			} else {
				generated_key(i, &want, &want_timeout);
			}
			memcpy(got.bytes, parsed[i].key, parsed[i].klen <= 16 ? parsed[i].klen : 16);
			EXPECT(tc->label, parsed[i].klen == klen, "element %zu key length %u, expected %u", i,
			    parsed[i].klen, klen);
			EXPECT(tc->label, memcmp(parsed[i].key, want.bytes, klen) == 0, "element %zu key %s, expected %s",
			    i, netaddr_format(&got, got_text, sizeof(got_text)),
			    netaddr_format(&want, want_text, sizeof(want_text)));
			EXPECT(tc->label, parsed[i].timeout == want_timeout, "element %zu timeout %lld, expected %lld", i,
			    (long long)parsed[i].timeout, (long long)want_timeout);
		}
	}
	EXPECT_ALL_PASSED();
}

/* ---- what nftset_build_batch refuses ---- */

struct build_refusal_case {
	const char	*label;
	const char	*addr;
	int		 family;
	int64_t		 timeout;
	size_t		 buflen;
};

static const struct build_refusal_case build_refusal_cases[] = {
	{ "IPv4 loopback", "127.0.0.1", AF_INET, 1000, 4096 },
	{ "IPv4 loopback, other /8 address", "127.255.255.254", AF_INET, 1000, 4096 },
	{ "IPv6 loopback", "::1", AF_INET6, 1000, 4096 },
	{ "IPv4-mapped loopback", "::ffff:127.0.0.1", AF_INET, 1000, 4096 },
	{ "IPv6 in ::/64 (its key covers ::1)", "::2", AF_INET6, 1000, 4096 },
	{ "IPv6 key for an IPv4 set", "2001:db8::1", AF_INET, 1000, 4096 },
	{ "IPv4 key for an IPv6 set", "192.0.2.1", AF_INET6, 1000, 4096 },
	{ "negative timeout", "192.0.2.1", AF_INET, -1, 4096 },
	{ "buffer too small", "192.0.2.1", AF_INET, 1000, 64 },
};

static void
test_nftset_build_refusals(void **state)
{
	char buf[4096];

	for (size_t c = 0; c < sizeof(build_refusal_cases) / sizeof(build_refusal_cases[0]); c++) {
		const struct build_refusal_case *tc = &build_refusal_cases[c];
		struct netaddr a;
		uint32_t seq = 1;

		if (netaddr_parse(tc->addr, &a) == -1)
			fail_msg("[%s] bad test address", tc->label);
		EXPECT(tc->label, nftset_build_batch(buf, tc->buflen, "mxtier", "block4", tc->family, &a, &tc->timeout, 1,
		    &seq) == 0, "batch built");
	}
	EXPECT_ALL_PASSED();
}

/* ---- what nftset_add / nftset_del refuse; the queue bound (no kernel: the loop never runs) ---- */

struct add_case {
	const char	*label;
	const char	*addr;
	int64_t		 timeout;
	int		 rc;
};

static const struct add_case add_cases[] = {
	{ "IPv4", "192.0.2.1", 60000, 0 },
	{ "IPv4 without timeout", "192.0.2.2", 0, 0 },
	{ "IPv6", "2001:db8::1", 60000, 0 },
	{ "IPv4-mapped IPv6", "::ffff:192.0.2.3", 60000, 0 },
	{ "IPv4 loopback", "127.0.0.1", 60000, -1 },
	{ "IPv4 loopback /8", "127.1.2.3", 60000, -1 },
	{ "IPv6 loopback", "::1", 60000, -1 },
	{ "IPv4-mapped loopback", "::ffff:127.0.0.1", 60000, -1 },
	{ "IPv6 in ::/64", "::abcd", 60000, -1 },
	{ "negative timeout", "192.0.2.1", -5, -1 },
	{ "timeout over a year", "192.0.2.1", NFTSET_TIMEOUT_MAX_MS + 1, -1 },
};

static void
test_nftset_add_refusals(void **state)
{
	struct event_base *base = event_base_new();
	struct nftset *ns = nftset_open(base, "mxtier", 2525);
	size_t accepted = 0;

	assert_non_null(ns);
	for (size_t c = 0; c < sizeof(add_cases) / sizeof(add_cases[0]); c++) {
		const struct add_case *tc = &add_cases[c];
		struct netaddr a;
		int rc;

		if (netaddr_parse(tc->addr, &a) == -1)
			fail_msg("[%s] bad test address", tc->label);
		rc = nftset_add(ns, NFTSET_BLOCK, &a, tc->timeout);
		EXPECT(tc->label, rc == tc->rc, "nftset_add returned %d, expected %d", rc, tc->rc);
		if (tc->timeout >= 0 && tc->timeout <= NFTSET_TIMEOUT_MAX_MS) {
			rc = nftset_del(ns, NFTSET_TRUST, &a);
			EXPECT(tc->label, rc == tc->rc, "nftset_del returned %d, expected %d", rc, tc->rc);
		}
		if (tc->rc == 0)
			accepted++;
	}
	EXPECT("stats", nftset_stats(ns)->adds == accepted, "adds %llu, expected %zu",
	    (unsigned long long)nftset_stats(ns)->adds, accepted);
	EXPECT("pending", nftset_pending(ns) == 2 * accepted, "pending %zu, expected %zu", nftset_pending(ns),
	    2 * accepted);
	nftset_close(ns);
	event_base_free(base);
	EXPECT_ALL_PASSED();
}

static void
test_nftset_queue_bound(void **state)
{
	struct event_base *base = event_base_new();
	struct nftset *ns = nftset_open(base, "mxtier", 2525);
	struct netaddr a = { .family = AF_INET };
	int64_t t;
	size_t refused = 0;

	assert_non_null(ns);
	for (size_t i = 0; i < NFTSET_QUEUE_MAX + 10; i++) {
		generated_key(i, &a, &t);
		if (nftset_add(ns, NFTSET_BLOCK, &a, 600000) == -1)
			refused++;
	}
	assert_int_equal(refused, 10);
	assert_int_equal(nftset_stats(ns)->queue_dropped, 10);
	assert_int_equal(nftset_pending(ns), NFTSET_QUEUE_MAX);
	/* A change to an element already queued still fits: it is coalesced. */
	generated_key(5, &a, &t);
	assert_int_equal(nftset_add(ns, NFTSET_BLOCK, &a, 1000), 0);
	assert_int_equal(nftset_pending(ns), NFTSET_QUEUE_MAX);
	nftset_close(ns);
	event_base_free(base);
}

/* ---- live: a network namespace of our own ---- */

#define LIVE_PORT	2525
static char live_netns[64];
static int live_orig_ns = -1;
static bool live_entered;

/* sh - run a shell command quietly; its exit status. */
static int
sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	return rc == -1 ? -1 : WEXITSTATUS(rc);
}

/* sh_out - a command's standard output, malloc'd (tests free it). */
static char *
sh_out(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	FILE *p;
	size_t len = 0, cap = 65536;
	char *out = malloc(cap);

	if (out == NULL)
		abort();
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	out[0] = '\0';
	if ((p = popen(cmd, "r")) == NULL)
		return out;
	for (;;) {
		size_t n;

		if (len + 4096 + 1 > cap && (out = realloc(out, cap *= 2)) == NULL)
			abort();
		n = fread(out + len, 1, 4096, p);
		if (n == 0)
			break;
		len += n;
	}
	out[len] = '\0';
	pclose(p);
	return out;
}

static size_t
count_substr(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static int
live_setup(void **state)
{
	int fd;

	if (geteuid() != 0) {
		print_message("[  SKIP    ] live nftables test: needs root\n");
		return 0;
	}
	if (sh("ip netns list >/dev/null 2>&1") != 0 || sh("nft --version >/dev/null 2>&1") != 0) {
		print_message("[  SKIP    ] live nftables test: no `ip netns` or no nft\n");
		return 0;
	}
	snprintf(live_netns, sizeof(live_netns), "mxt-nftset-test-%ld", (long)getpid());
	if (sh("ip netns add %s", live_netns) != 0) {
		print_message("[  SKIP    ] live nftables test: `ip netns add` failed\n");
		live_netns[0] = '\0';
		return 0;
	}
	live_orig_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	{
		char path[128];

		snprintf(path, sizeof(path), "/run/netns/%s", live_netns);
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (live_orig_ns == -1 || fd == -1 || setns(fd, CLONE_NEWNET) == -1) {
		print_message("[  SKIP    ] live nftables test: setns: %s\n", strerror(errno));
		if (fd != -1)
			close(fd);
		return 0;
	}
	close(fd);
	live_entered = true;
	return 0;
}

static int
live_teardown(void **state)
{
	if (live_entered) {
		if (setns(live_orig_ns, CLONE_NEWNET) == -1)
			fail_msg("cannot leave the test namespace: %s", strerror(errno));
		live_entered = false;
	}
	if (live_orig_ns != -1)
		close(live_orig_ns);
	live_orig_ns = -1;
	if (live_netns[0] != '\0')
		sh("ip netns del %s", live_netns);
	live_netns[0] = '\0';
	return 0;
}

static int64_t
test_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* run_until_synced - turn the loop until the writer has nothing pending (or 5 s pass). */
static bool
run_until_synced(struct event_base *base, struct nftset *ns)
{
	int64_t deadline = test_now_ms() + 5000;

	while (test_now_ms() < deadline) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (nftset_pending(ns) == 0)
			return true;
		usleep(1000);
	}
	return false;
}

static void
add(struct nftset *ns, enum nftset_kind kind, const char *text, int64_t timeout_ms)
{
	struct netaddr a;

	if (netaddr_parse(text, &a) == -1 || nftset_add(ns, kind, &a, timeout_ms) == -1)
		fail_msg("nftset_add %s refused", text);
}

static void
del(struct nftset *ns, enum nftset_kind kind, const char *text)
{
	struct netaddr a;

	if (netaddr_parse(text, &a) == -1 || nftset_del(ns, kind, &a) == -1)
		fail_msg("nftset_del %s refused", text);
}

/* load_mxtier_ruleset - what `mxtierctl rules | nft -f -` loads, from the real printer. */
static void
load_mxtier_ruleset(void)
{
	char err[512], path[] = "/tmp/mxt-nftset-rules-XXXXXX";
	struct config *c = config_load_string("nftset-test.conf",
	    "primary_ips = 192.0.2.10\nlisten_port = 2525\nbackend = 127.0.0.1:2526\nkernel_sets = yes\n", err,
	    sizeof(err));
	int fd = mkstemp(path);
	FILE *f;

	if (c == NULL)
		fail_msg("test config refused: %s", err);
	if (fd == -1 || (f = fdopen(fd, "w")) == NULL)
		fail_msg("mkstemp: %s", strerror(errno));
	ruleset_print(c, f);
	fclose(f);
	config_unref(c);
	if (sh("nft -f %s", path) != 0) {
		unlink(path);
		fail_msg("nft -f of the printed ruleset failed");
	}
	unlink(path);
}

#define SHOW(set) sh_out("nft list set inet mxtier %s 2>&1", set)

static void
test_nftset_live(void **state)
{
	struct event_base *base;
	struct nftset *ns;
	const struct nftset_stats *st;
	char *out, *chain_before, *chain_after;
	uint64_t enoent_before, acks_before, errors_before;

	if (!live_entered)
		skip();
	load_mxtier_ruleset();
	base = event_base_new();
	ns = nftset_open(base, "mxtier", LIVE_PORT);
	assert_non_null(ns);
	st = nftset_stats(ns);

	/* Adds with timeouts, IPv6 as /64, mapped IPv4 as IPv4, an element without timeout. */
	add(ns, NFTSET_BLOCK, "192.0.2.1", 60000);
	add(ns, NFTSET_BLOCK, "192.0.2.2", 30000);
	add(ns, NFTSET_BLOCK, "::ffff:192.0.2.3", 45000);
	add(ns, NFTSET_BLOCK, "2001:db8:1:2:3:4:5:6", 60000);
	add(ns, NFTSET_TRUST, "198.51.100.7", 90000);
	add(ns, NFTSET_TRUST, "2001:db8:ffff:1::9", 0);
	assert_true(run_until_synced(base, ns));
	out = SHOW("block4");
	EXPECT("adds", strstr(out, "192.0.2.1 timeout 1m expires") != NULL, "block4: %s", out);
	EXPECT("adds", strstr(out, "192.0.2.2 timeout 30s expires") != NULL, "block4: %s", out);
	EXPECT("mapped IPv4", strstr(out, "192.0.2.3 timeout 45s expires") != NULL, "block4: %s", out);
	free(out);
	out = SHOW("block6");
	EXPECT("IPv6 /64", strstr(out, "2001:db8:1:2:: timeout 1m expires") != NULL, "block6: %s", out);
	free(out);
	out = SHOW("trust4");
	EXPECT("trust4", strstr(out, "198.51.100.7 timeout 1m30s expires") != NULL, "trust4: %s", out);
	free(out);
	out = SHOW("trust6");
	EXPECT("no timeout", strstr(out, "elements = { 2001:db8:ffff:1:: }") != NULL, "trust6: %s", out);
	free(out);
	EXPECT("adds", st->acks_ok >= 4 && st->other_errors == 0 && st->enoent == 0 && st->restores == 0,
	    "acks_ok %llu other %llu enoent %llu restores %llu", (unsigned long long)st->acks_ok,
	    (unsigned long long)st->other_errors, (unsigned long long)st->enoent, (unsigned long long)st->restores);

	/* Refresh: the timeout is replaced (DELSETELEM + NEWSETELEM, so 6.1 refreshes too). */
	acks_before = st->acks_ok;
	add(ns, NFTSET_BLOCK, "192.0.2.2", 120000);
	assert_true(run_until_synced(base, ns));
	EXPECT("refresh", st->acks_ok - acks_before == 2, "%llu ACKs, expected 2 (DELSETELEM + NEWSETELEM)",
	    (unsigned long long)(st->acks_ok - acks_before));
	out = SHOW("block4");
	/* Within the same millisecond nft prints the full "expires 2m". */
	EXPECT("refresh", strstr(out, "192.0.2.2 timeout 2m expires 1m5") != NULL ||
	    strstr(out, "192.0.2.2 timeout 2m expires 2m") != NULL, "block4: %s", out);
	free(out);

	/* Refresh of an element deleted behind the writer's back: DELSETELEM ENOENT -> plain add. */
	assert_int_equal(sh("nft delete element inet mxtier block4 '{ 192.0.2.1 }'"), 0);
	enoent_before = st->enoent;
	add(ns, NFTSET_BLOCK, "192.0.2.1", 300000);
	assert_true(run_until_synced(base, ns));
	out = SHOW("block4");
	EXPECT("refresh of a missing element", strstr(out, "192.0.2.1 timeout 5m expires") != NULL, "block4: %s", out);
	free(out);
	EXPECT("refresh of a missing element", st->enoent > enoent_before && st->restores == 0,
	    "enoent %llu (before %llu), restores %llu", (unsigned long long)st->enoent,
	    (unsigned long long)enoent_before, (unsigned long long)st->restores);

	/* Deletions, also of an element never written. */
	del(ns, NFTSET_BLOCK, "192.0.2.3");
	del(ns, NFTSET_BLOCK, "192.0.2.99");
	assert_true(run_until_synced(base, ns));
	out = SHOW("block4");
	EXPECT("delete", strstr(out, "192.0.2.3") == NULL, "block4: %s", out);
	EXPECT("delete", strstr(out, "192.0.2.2 timeout 2m") != NULL, "other elements gone: %s", out);
	free(out);
	EXPECT("delete", st->restores == 0 && st->other_errors == 0, "restores %llu other %llu",
	    (unsigned long long)st->restores, (unsigned long long)st->other_errors);

	/* 300 elements (two messages), then a refresh of all with one deleted by hand (isolation). */
	for (int i = 0; i < 300; i++) {
		char a[32];

		snprintf(a, sizeof(a), "10.1.%d.%d", i / 200, i % 200 + 1);
		add(ns, NFTSET_BLOCK, a, 100000);
	}
	assert_true(run_until_synced(base, ns));
	out = SHOW("block4");
	EXPECT("300 elements", count_substr(out, "10.1.") == 300, "%zu of 300 listed", count_substr(out, "10.1."));
	free(out);
	assert_int_equal(sh("nft delete element inet mxtier block4 '{ 10.1.0.5 }'"), 0);
	for (int i = 0; i < 300; i++) {
		char a[32];

		snprintf(a, sizeof(a), "10.1.%d.%d", i / 200, i % 200 + 1);
		add(ns, NFTSET_BLOCK, a, 200000);
	}
	assert_true(run_until_synced(base, ns));
	out = SHOW("block4");
	EXPECT("300 refreshed", count_substr(out, "10.1.") == 300, "%zu of 300 listed", count_substr(out, "10.1."));
	EXPECT("300 refreshed", count_substr(out, "timeout 3m20s") == 300, "%zu of 300 with the new timeout",
	    count_substr(out, "timeout 3m20s"));
	free(out);

	/* The ruleset is flushed: the next write finds the table missing, restores it and re-seeds. */
	chain_before = sh_out("nft list chain inet mxtier prerouting");
	assert_int_equal(sh("nft flush ruleset"), 0);
	add(ns, NFTSET_BLOCK, "203.0.113.5", 60000);
	assert_true(run_until_synced(base, ns));
	EXPECT("restore", st->restores == 1, "restores %llu", (unsigned long long)st->restores);
	EXPECT("restore", st->reseeded >= 305, "reseeded %llu", (unsigned long long)st->reseeded);
	chain_after = sh_out("nft list chain inet mxtier prerouting");
	EXPECT("restored rules", strcmp(chain_before, chain_after) == 0, "before:\n%s\nafter:\n%s", chain_before,
	    chain_after);
	/* nft 1.0.6 lists the IPv6 rule as "... ffff:ffff:ffff:ffff:: == @block6 drop" for the loaded text too. */
	EXPECT("restored rules", strstr(chain_after, "tcp dport 2525 ip saddr @block4 drop") != NULL &&
	    strstr(chain_after, "tcp dport 2525 ip6 saddr & ffff:ffff:ffff:ffff:: ") != NULL &&
	    strstr(chain_after, "@block6 drop") != NULL, "chain: %s", chain_after);
	free(chain_before);
	free(chain_after);
	out = SHOW("block4");
	EXPECT("re-seeded", strstr(out, "203.0.113.5 timeout 1m") != NULL, "block4: %s", out);
	EXPECT("re-seeded", strstr(out, "192.0.2.2 timeout ") != NULL && strstr(out, "192.0.2.2 timeout 2m expires 1m5") !=
	    NULL, "timeout not kept: %s", out);
	EXPECT("re-seeded", count_substr(out, "10.1.") == 300, "%zu of 300 re-seeded", count_substr(out, "10.1."));
	free(out);
	out = SHOW("block6");
	EXPECT("re-seeded", strstr(out, "2001:db8:1:2:: timeout") != NULL, "block6: %s", out);
	free(out);
	out = SHOW("trust6");
	EXPECT("re-seeded", strstr(out, "elements = { 2001:db8:ffff:1:: }") != NULL, "trust6: %s", out);
	free(out);
	out = sh_out("nft list set inet mxtier trust4");
	EXPECT("restored set", strstr(out, "type ipv4_addr") != NULL && strstr(out, "flags timeout") != NULL,
	    "trust4: %s", out);
	free(out);

	/* One set deleted by hand, the table still there: not restored, the other sets still written. */
	assert_int_equal(sh("nft delete set inet mxtier trust6"), 0);
	errors_before = st->other_errors;
	add(ns, NFTSET_TRUST, "2001:db8:eeee:1::1", 60000);
	add(ns, NFTSET_BLOCK, "203.0.113.6", 60000);
	assert_true(run_until_synced(base, ns));
	EXPECT("set missing", st->restores == 1 && st->other_errors == errors_before + 1,
	    "restores %llu, other errors %llu (before %llu)", (unsigned long long)st->restores,
	    (unsigned long long)st->other_errors, (unsigned long long)errors_before);
	out = SHOW("block4");
	EXPECT("set missing", strstr(out, "203.0.113.6 timeout 1m") != NULL, "block4 not written: %s", out);
	free(out);

	/* A reload empties the sets; nftset_reseed writes everything live again. */
	load_mxtier_ruleset();
	out = SHOW("block4");
	EXPECT("reload", strstr(out, "elements") == NULL, "reload kept elements: %s", out);
	free(out);
	nftset_reseed(ns);
	assert_true(run_until_synced(base, ns));
	out = SHOW("block4");
	EXPECT("reseed", strstr(out, "203.0.113.6 timeout") != NULL && count_substr(out, "10.1.") == 300,
	    "block4: %s", out);
	free(out);
	out = SHOW("trust6");
	EXPECT("reseed", strstr(out, "2001:db8:eeee:1:: timeout") != NULL && strstr(out, "2001:db8:ffff:1::") != NULL,
	    "trust6: %s", out);
	free(out);
	nftset_close(ns);

	/* A full set: ENFILE is counted and nothing else happens. */
	assert_int_equal(sh("nft -f - <<'EOF'\n"
	    "table inet mxsmall {\n"
	    " set block4 { type ipv4_addr; size 4; flags timeout; }\n"
	    " set block6 { type ipv6_addr; flags timeout; }\n"
	    " set trust4 { type ipv4_addr; flags timeout; }\n"
	    " set trust6 { type ipv6_addr; flags timeout; }\n"
	    "}\nEOF"), 0);
	ns = nftset_open(base, "mxsmall", LIVE_PORT);
	assert_non_null(ns);
	st = nftset_stats(ns);
	for (int i = 1; i <= 10; i++) {
		char a[32];

		snprintf(a, sizeof(a), "192.0.2.%d", i);
		add(ns, NFTSET_BLOCK, a, 60000);
	}
	add(ns, NFTSET_TRUST, "192.0.2.200", 60000);
	assert_true(run_until_synced(base, ns));
	EXPECT("set full", st->enfile >= 1 && st->restores == 0, "enfile %llu restores %llu",
	    (unsigned long long)st->enfile, (unsigned long long)st->restores);
	out = sh_out("nft list set inet mxsmall trust4");
	EXPECT("set full", strstr(out, "192.0.2.200 timeout") != NULL, "other set's change lost: %s", out);
	free(out);
	nftset_close(ns);
	event_base_free(base);
	EXPECT_ALL_PASSED();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nftset_build_roundtrip),
		cmocka_unit_test(test_nftset_build_refusals),
		cmocka_unit_test(test_nftset_add_refusals),
		cmocka_unit_test(test_nftset_queue_bound),
		cmocka_unit_test_setup_teardown(test_nftset_live, live_setup, live_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
