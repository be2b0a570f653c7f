/*
 * test_nftset_live.c - the kernel set writer against a real kernel (root
 * and `ip netns` only, else skipped with a message). In a network namespace
 * of its own (always deleted) the test process setns()es itself, loads the
 * ruleset mxtierctl prints with `nft -f`, and drives the writer on a real
 * event loop: adds with timeouts, refreshes (also of an element deleted
 * behind its back), deletions, 300 elements, `nft flush ruleset` followed
 * by the writer's restore and re-seed, a set deleted by hand, a reload
 * with nftset_reseed, and a full set (ENFILE). The batches themselves are
 * checked without a kernel in test_nftset.c.
 */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "netaddr.h"
#include "nftset.h"
#include "ruleset.h"

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
		cmocka_unit_test_setup_teardown(test_nftset_live, live_setup, live_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
