/*
 * test_nftset.c - the kernel set writer.
 *
 * Without a kernel: nftset_add/nftset_del, then the daemon's own batch
 * builder (nftset_batch_build, from nftset_internal.h), parsed back with
 * libnftnl: message types and flags, table, set, keys, key lengths,
 * timeouts and element flags, for a table of labelled cases (IPv4, IPv6
 * /64, mapped IPv4, refresh as DELSETELEM + NEWSETELEM, deletion with its
 * probe, 300 elements split across messages); then ACKed as a committing
 * kernel would, after which the writer is in sync. Also: addresses and
 * timeouts nftset_add refuses; the queue bound. Against a real kernel, in
 * a network namespace of its own: test_nftset_live.c.
 */
#include "unit.h"

#include <arpa/inet.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <event2/event.h>
#include <libmnl/libmnl.h>
#include <libnftnl/set.h>

#include "netaddr.h"
#include "nftset.h"
#include "nftset_internal.h"

/* ---- the daemon's batch builder -> parse back with libnftnl ---- */

#define RT_MAX		300	/* elements one case writes at most */
#define RT_CHANGES	4
#define RT_MSGS		6
#define RT_ELEMS	4

/* Message types and the exact nlmsg_flags the writer must send them with. */
#define RT_NEW		NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK
#define RT_DEL		NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK

enum rt_op { RT_NONE = 0, RT_ADD, RT_REMOVE };

/* One call the case makes: nftset_add (with a timeout) or nftset_del. */
struct rt_change {
	enum rt_op		 op;
	enum nftset_kind	 kind;
	const char		*addr;
	int64_t			 timeout_ms;
};

struct rt_elem {
	const char	*key;		/* the normalised key, as text */
	int64_t		 timeout_ms;	/* 0: no NFTA_SET_ELEM_TIMEOUT attribute */
};

struct rt_msg {
	uint16_t	 type;		/* NFT_MSG_NEWSETELEM / NFT_MSG_DELSETELEM */
	uint16_t	 flags;		/* nlmsg_flags, exactly */
	const char	*set;
	size_t		 nelems;
	struct rt_elem	 elems[RT_ELEMS];	/* unused for generated elements */
};

struct roundtrip_case {
	const char		*label;
	const char		*table;				/* NULL: "mxtier" */
	struct rt_change	 committed[RT_CHANGES];		/* written and ACKed first: what the kernel holds */
	struct rt_change	 changes[RT_CHANGES];		/* the changes of the batch under test */
	size_t			 generated;			/* plus this many adds of generated_key(i) to block4 */
	size_t			 nmsgs;				/* messages between BEGIN and END; 0: no batch */
	struct rt_msg		 msgs[RT_MSGS];
};

static const struct roundtrip_case roundtrip_cases[] = {
	{ "IPv4 add", NULL, { { 0 } },
	    { { RT_ADD, NFTSET_BLOCK, "192.0.2.1", 60000 } }, 0,
	    1, { { RT_NEW, "block4", 1, { { "192.0.2.1", 60000 } } } } },
	{ "IPv4 add without timeout, other table", "other_table", { { 0 } },
	    { { RT_ADD, NFTSET_TRUST, "192.0.2.2", 0 } }, 0,
	    1, { { RT_NEW, "trust4", 1, { { "192.0.2.2", 0 } } } } },
	{ "IPv6 as its /64 key, no interval end element", NULL, { { 0 } },
	    { { RT_ADD, NFTSET_BLOCK, "2001:db8:1:2:3:4:5:6", 3600000 } }, 0,
	    1, { { RT_NEW, "block6", 1, { { "2001:db8:1:2::", 3600000 } } } } },
	{ "IPv6 trust without timeout", NULL, { { 0 } },
	    { { RT_ADD, NFTSET_TRUST, "2001:db8:ffff:1::9", 0 } }, 0,
	    1, { { RT_NEW, "trust6", 1, { { "2001:db8:ffff:1::", 0 } } } } },
	{ "IPv4-mapped IPv6 written as IPv4", NULL, { { 0 } },
	    { { RT_ADD, NFTSET_BLOCK, "::ffff:198.51.100.7", 5000 } }, 0,
	    1, { { RT_NEW, "block4", 1, { { "198.51.100.7", 5000 } } } } },
	{ "mapped and plain IPv4 coalesce into one element, last timeout wins", NULL, { { 0 } },
	    { { RT_ADD, NFTSET_BLOCK, "192.0.2.7", 1000 }, { RT_ADD, NFTSET_BLOCK, "::ffff:192.0.2.7", 5000 } }, 0,
	    1, { { RT_NEW, "block4", 1, { { "192.0.2.7", 5000 } } } } },
	{ "refresh of IPv4: DELSETELEM then NEWSETELEM", NULL,
	    { { RT_ADD, NFTSET_BLOCK, "192.0.2.2", 30000 } },
	    { { RT_ADD, NFTSET_BLOCK, "192.0.2.2", 120000 } }, 0,
	    2, { { RT_DEL, "block4", 1, { { "192.0.2.2", 0 } } },
		 { RT_NEW, "block4", 1, { { "192.0.2.2", 120000 } } } } },
	{ "refresh of an IPv6 /64 by another address in it", NULL,
	    { { RT_ADD, NFTSET_TRUST, "2001:db8:ffff:1::9", 0 } },
	    { { RT_ADD, NFTSET_TRUST, "2001:db8:ffff:1::1", 60000 } }, 0,
	    2, { { RT_DEL, "trust6", 1, { { "2001:db8:ffff:1::", 0 } } },
		 { RT_NEW, "trust6", 1, { { "2001:db8:ffff:1::", 60000 } } } } },
	{ "refresh of mapped IPv4", NULL,
	    { { RT_ADD, NFTSET_BLOCK, "198.51.100.9", 10000 } },
	    { { RT_ADD, NFTSET_BLOCK, "::ffff:198.51.100.9", 20000 } }, 0,
	    2, { { RT_DEL, "block4", 1, { { "198.51.100.9", 0 } } },
		 { RT_NEW, "block4", 1, { { "198.51.100.9", 20000 } } } } },
	{ "deletion: DELSETELEM and an empty NEWSETELEM probe", NULL,
	    { { RT_ADD, NFTSET_BLOCK, "192.0.2.3", 45000 } },
	    { { RT_REMOVE, NFTSET_BLOCK, "192.0.2.3", 0 } }, 0,
	    2, { { RT_DEL, "block4", 1, { { "192.0.2.3", 0 } } },
		 { RT_NEW, "block4", 0, { { NULL, 0 } } } } },
	{ "deletion of an element never written (may be there from before a restart)", NULL, { { 0 } },
	    { { RT_REMOVE, NFTSET_TRUST, "2001:db8:2:3::1", 0 } }, 0,
	    2, { { RT_DEL, "trust6", 1, { { "2001:db8:2:3::", 0 } } },
		 { RT_NEW, "trust6", 0, { { NULL, 0 } } } } },
	{ "add then delete before the flush: no batch", NULL, { { 0 } },
	    { { RT_ADD, NFTSET_BLOCK, "192.0.2.4", 1000 }, { RT_REMOVE, NFTSET_BLOCK, "192.0.2.4", 0 } }, 0,
	    0, { { 0 } } },
	{ "several sets: deletions first, then additions, then the probe", NULL,
	    { { RT_ADD, NFTSET_BLOCK, "192.0.2.5", 60000 } },
	    { { RT_ADD, NFTSET_TRUST, "198.51.100.1", 1000 }, { RT_REMOVE, NFTSET_BLOCK, "192.0.2.5", 0 },
	      { RT_ADD, NFTSET_BLOCK, "2001:db8::1", 2000 } }, 0,
	    4, { { RT_DEL, "block4", 1, { { "192.0.2.5", 0 } } },
		 { RT_NEW, "block6", 1, { { "2001:db8::", 2000 } } },
		 { RT_NEW, "trust4", 1, { { "198.51.100.1", 1000 } } },
		 { RT_NEW, "block4", 0, { { NULL, 0 } } } } },
	{ "256 adds fill exactly one message", NULL, { { 0 } }, { { 0 } }, 256,
	    1, { { RT_NEW, "block4", 256, { { NULL, 0 } } } } },
	{ "300 adds split 256 + 44", NULL, { { 0 } }, { { 0 } }, 300,
	    2, { { RT_NEW, "block4", 256, { { NULL, 0 } } }, { RT_NEW, "block4", 44, { { NULL, 0 } } } } },
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
	bool		has_flags;	/* NFTA_SET_ELEM_FLAGS present (e.g. an interval end) */
	uint32_t	flags;
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
	p->has_flags = nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_FLAGS);
	p->flags = p->has_flags ? nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_FLAGS) : 0;
	ctx->n++;
	return 0;
}

/* rt_apply - make the case's calls; false (reported) if one is refused. */
static bool
rt_apply(const char *label, struct nftset *ns, const struct rt_change *ch, size_t generated)
{
	bool ok = true;

	for (size_t i = 0; i < RT_CHANGES && ch[i].op != RT_NONE; i++) {
		struct netaddr a;
		int rc;

		if (netaddr_parse(ch[i].addr, &a) == -1)
			fail_msg("[%s] bad test address %s", label, ch[i].addr);
		rc = ch[i].op == RT_ADD ? nftset_add(ns, ch[i].kind, &a, ch[i].timeout_ms) : nftset_del(ns, ch[i].kind, &a);
		EXPECT(label, rc == 0, "change %zu (%s) refused", i, ch[i].addr);
		ok = ok && rc == 0;
	}
	for (size_t i = 0; i < generated; i++) {
		struct netaddr a;
		int64_t t;

		generated_key(i, &a, &t);
		if (nftset_add(ns, NFTSET_BLOCK, &a, t) == -1) {
			EXPECT(label, false, "generated element %zu refused", i);
			ok = false;
		}
	}
	return ok;
}

/*
 * rt_ack_all - answer the transaction as the kernel does when it commits
 * it: the writer is told it was sent, then gets one NLMSG_ERROR with error
 * 0 for every message but BEGIN and END. Returns the number of ACKs fed.
 */
static size_t
rt_ack_all(struct nftset *ns)
{
	uint32_t seqs[RT_MSGS + TX_MSGS_MAX];
	size_t n = 0;
	int rest = (int)ns->tx.len;
	const struct nlmsghdr *nlh;

	for (nlh = (const struct nlmsghdr *)ns->tx.buf; mnl_nlmsg_ok(nlh, rest); nlh = mnl_nlmsg_next(nlh, &rest)) {
		if (nlh->nlmsg_type != NFNL_MSG_BATCH_BEGIN && nlh->nlmsg_type != NFNL_MSG_BATCH_END &&
		    n < sizeof(seqs) / sizeof(seqs[0]))
			seqs[n++] = nlh->nlmsg_seq;
	}
	nftset_tx_sent(ns);
	for (size_t i = 0; i < n; i++) {
		char buf[MNL_SOCKET_BUFFER_SIZE];
		struct nlmsghdr *ack = mnl_nlmsg_put_header(buf);
		struct nlmsgerr *err = mnl_nlmsg_put_extra_header(ack, sizeof(*err));

		ack->nlmsg_type = NLMSG_ERROR;
		ack->nlmsg_seq = seqs[i];
		err->error = 0;
		err->msg.nlmsg_seq = seqs[i];
		nftset_ack_handle(ns, ack);
	}
	return n;
}

/* rt_check_msgs - parse the built transaction back with libnftnl and compare it with the case. */
static void
rt_check_msgs(const struct roundtrip_case *tc, const struct nftset *ns, const char *table)
{
	static struct parsed_elem parsed[RT_MAX];
	const struct tx *tx = &ns->tx;
	uint32_t expect_seq = tx->begin_seq;
	size_t msgs = 0, generated_next = 0;
	bool began = false, ended = false;
	int rest = (int)tx->len;
	const struct nlmsghdr *nlh;

	for (nlh = (const struct nlmsghdr *)tx->buf; mnl_nlmsg_ok(nlh, rest); nlh = mnl_nlmsg_next(nlh, &rest)) {
		const struct nfgenmsg *nfg = mnl_nlmsg_get_payload(nlh);
		const struct rt_msg *want;
		struct parse_ctx ctx = { .elems = parsed, .n = 0 };
		struct nftnl_set *s;

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
			EXPECT(tc->label, !ended, "two ENDs");
			ended = true;
			continue;
		}
		EXPECT(tc->label, began && !ended, "element message outside BEGIN/END");
		if (msgs >= tc->nmsgs) {
			EXPECT(tc->label, false, "message %zu not expected (type 0x%x)", msgs + 1, nlh->nlmsg_type);
			msgs++;
			continue;
		}
		want = &tc->msgs[msgs++];
		EXPECT(tc->label, nlh->nlmsg_type == ((NFNL_SUBSYS_NFTABLES << 8) | want->type),
		    "message %zu: type 0x%x, expected 0x%x", msgs, nlh->nlmsg_type,
		    (NFNL_SUBSYS_NFTABLES << 8) | want->type);
		EXPECT(tc->label, nlh->nlmsg_flags == want->flags, "message %zu: flags 0x%x, expected 0x%x", msgs,
		    nlh->nlmsg_flags, want->flags);
		EXPECT(tc->label, nfg->nfgen_family == NFPROTO_INET, "message %zu: family %u", msgs, nfg->nfgen_family);
		if ((s = nftnl_set_alloc()) == NULL)
			fail_msg("out of memory");
		EXPECT(tc->label, nftnl_set_elems_nlmsg_parse(nlh, s) == 0, "libnftnl cannot parse message %zu", msgs);
		EXPECT(tc->label, strcmp(unit_str(nftnl_set_get_str(s, NFTNL_SET_TABLE)), table) == 0,
		    "message %zu: table %s", msgs, unit_str(nftnl_set_get_str(s, NFTNL_SET_TABLE)));
		EXPECT(tc->label, strcmp(unit_str(nftnl_set_get_str(s, NFTNL_SET_NAME)), want->set) == 0,
		    "message %zu: set %s, expected %s", msgs, unit_str(nftnl_set_get_str(s, NFTNL_SET_NAME)), want->set);
		EXPECT(tc->label, nftnl_set_elem_foreach(s, collect_elem, &ctx) == 0, "message %zu: element walk failed",
		    msgs);
		nftnl_set_free(s);
		EXPECT(tc->label, ctx.n == want->nelems, "message %zu: %zu elements, expected %zu", msgs, ctx.n,
		    want->nelems);
		for (size_t i = 0; i < ctx.n && i < want->nelems; i++) {
			const struct parsed_elem *p = &parsed[i];
			struct netaddr key, got;
			int64_t timeout;
			unsigned klen;
			char got_text[NETADDR_STRLEN], want_text[NETADDR_STRLEN];

			if (tc->generated > 0) {
				generated_key(generated_next++, &key, &timeout);
			} else {
				if (netaddr_parse(want->elems[i].key, &key) == -1)
					fail_msg("[%s] bad expected key %s", tc->label, want->elems[i].key);
				timeout = want->elems[i].timeout_ms;
			}
			klen = key.family == AF_INET6 ? 16 : 4;
			got = (struct netaddr){ .family = p->klen == 16 ? AF_INET6 : AF_INET };
			memcpy(got.bytes, p->key, p->klen <= 16 ? p->klen : 16);
			EXPECT(tc->label, p->klen == klen, "message %zu element %zu: key length %u, expected %u", msgs, i,
			    p->klen, klen);
			EXPECT(tc->label, p->klen == klen && memcmp(p->key, key.bytes, klen) == 0,
			    "message %zu element %zu: key %s, expected %s", msgs, i,
			    netaddr_format(&got, got_text, sizeof(got_text)), netaddr_format(&key, want_text, sizeof(want_text)));
			EXPECT(tc->label, p->timeout == timeout, "message %zu element %zu: timeout %lld, expected %lld", msgs,
			    i, (long long)p->timeout, (long long)timeout);
			/* The sets are not interval sets: no NFT_SET_ELEM_INTERVAL_END, no flags at all. */
			EXPECT(tc->label, !p->has_flags, "message %zu element %zu: element flags 0x%x", msgs, i, p->flags);
		}
	}
	EXPECT(tc->label, rest == 0, "%d trailing bytes", rest);
	EXPECT(tc->label, began && ended, "BEGIN %d END %d", began, ended);
	EXPECT(tc->label, msgs == tc->nmsgs, "%zu element messages, expected %zu", msgs, tc->nmsgs);
	EXPECT(tc->label, tx->nmsgs == tc->nmsgs, "the writer expects %zu ACKs for %zu messages", tx->nmsgs,
	    tc->nmsgs);
	EXPECT(tc->label, expect_seq == ns->seq, "writer's next seq %u, expected %u (past END)", ns->seq, expect_seq);
}

/*
 * test_nftset_batch_roundtrip - the batches nftset_add/nftset_del lead to,
 * built by the daemon's own builder (nftset_batch_build, what the event
 * loop sends), parsed back with libnftnl; then ACKed 0 as a committing
 * kernel would, after which the writer must be in sync. No kernel needed.
 */
static void
test_nftset_batch_roundtrip(void **state)
{
	struct event_base *base = event_base_new();

	assert_non_null(base);
	for (size_t c = 0; c < sizeof(roundtrip_cases) / sizeof(roundtrip_cases[0]); c++) {
		const struct roundtrip_case *tc = &roundtrip_cases[c];
		const char *table = tc->table != NULL ? tc->table : "mxtier";
		struct nftset *ns = nftset_open(base, table, 2525);
		const struct nftset_stats *st;
		uint64_t acks_before;
		bool built;

		assert_non_null(ns);
		st = nftset_stats(ns);
		if (tc->committed[0].op != RT_NONE) {
			if (!rt_apply(tc->label, ns, tc->committed, 0) || !nftset_batch_build(ns)) {
				EXPECT(tc->label, false, "the committed changes built no batch");
				nftset_close(ns);
				continue;
			}
			rt_ack_all(ns);
			EXPECT(tc->label, nftset_pending(ns) == 0, "after the committed batch: %zu pending",
			    nftset_pending(ns));
		}
		if (!rt_apply(tc->label, ns, tc->changes, tc->generated)) {
			nftset_close(ns);
			continue;
		}
		built = nftset_batch_build(ns);
		EXPECT(tc->label, built == (tc->nmsgs > 0), "nftset_batch_build returned %d", built);
		if (built) {
			size_t acks;

			rt_check_msgs(tc, ns, table);
			acks_before = st->acks_ok;
			acks = rt_ack_all(ns);
			EXPECT(tc->label, acks == tc->nmsgs && st->acks_ok - acks_before == acks,
			    "%zu ACKs fed, %llu counted, %zu expected", acks,
			    (unsigned long long)(st->acks_ok - acks_before), tc->nmsgs);
		}
		EXPECT(tc->label, nftset_pending(ns) == 0 && !ns->tx.active && !ns->tx.built,
		    "not in sync after the ACKs: %zu pending", nftset_pending(ns));
		EXPECT(tc->label, st->other_errors == 0 && st->enoent == 0 && st->restores == 0,
		    "other %llu enoent %llu restores %llu", (unsigned long long)st->other_errors,
		    (unsigned long long)st->enoent, (unsigned long long)st->restores);
		nftset_close(ns);
	}
	event_base_free(base);
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

/* The set sizes status and /metrics print, and the words an ENFILE is logged with. */
static void
test_nftset_elements_and_error_text(void **state)
{
	struct event_base *base = event_base_new();
	struct nftset *ns = nftset_open(base, "mxtier", 2525);
	static const char *const block4[] = { "192.0.2.1", "192.0.2.2", "192.0.2.3" };
	struct netaddr a;
	uint64_t n[NFTSET_SETS];

	assert_non_null(ns);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(netaddr_parse(block4[i], &a), 0);
		assert_int_equal(nftset_add(ns, NFTSET_BLOCK, &a, 600000), 0);
	}
	assert_int_equal(netaddr_parse("2001:db8:1::7", &a), 0);
	assert_int_equal(nftset_add(ns, NFTSET_BLOCK, &a, 600000), 0);
	assert_int_equal(netaddr_parse("198.51.100.1", &a), 0);
	assert_int_equal(nftset_add(ns, NFTSET_TRUST, &a, 600000), 0);
	nftset_elements(ns, n);
	assert_int_equal(n[0], 3);
	assert_int_equal(n[1], 1);
	assert_int_equal(n[2], 1);
	assert_int_equal(n[3], 0);
	assert_string_equal(nftset_set_name(0), "block4");
	assert_string_equal(nftset_set_name(3), "trust6");
	assert_int_equal(netaddr_parse("192.0.2.2", &a), 0);
	assert_int_equal(nftset_del(ns, NFTSET_BLOCK, &a), 0);
	nftset_elements(ns, n);
	assert_int_equal(n[0], 2);
	assert_string_equal(nftset_error_text(ENFILE), "set full");
	assert_string_equal(nftset_error_text(ENOENT), strerror(ENOENT));
	nftset_close(ns);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nftset_elements_and_error_text),
		cmocka_unit_test(test_nftset_batch_roundtrip),
		cmocka_unit_test(test_nftset_add_refusals),
		cmocka_unit_test(test_nftset_queue_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
