/*
 * nftset_restore.c - when a write says ENOENT for a set (the table was
 * flushed or deleted), recreate `table inet <table>` as the ruleset defines
 * it (the table, the four sets, the prerouting chain and its two drop
 * rules) in one transaction, then re-seed every live element from the
 * shadow table. A restore that finds the table still there (EEXIST) means
 * only a set was deleted by hand: not ours to repair; its writes are given
 * up for a back-off while the other sets go on. nftset_reseed (nftset.c)
 * is the same re-seed for after a ruleset reload, which empties the sets.
 *
 * Nothing here calls up into the writer: what it should do next (back off,
 * arm the batching timer) is returned to it.
 */
#include "nftset_internal.h"

#include <errno.h>
#include <string.h>

#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

#include "log.h"

/* ---- re-seeding ---- */

/*
 * nftset_reseed_all - the kernel sets are (or may be) empty: every live
 * element is written again. Returns how many; *queued is set if any went
 * on the write FIFO just now (the writer arms its batching timer).
 */
size_t
nftset_reseed_all(struct nftset *ns, bool *queued)
{
	int64_t now = nftset_now_ms();
	size_t n = 0;

	for (uint32_t i = 0; i < ns->never_used; i++) {
		struct shadow_entry *e = &ns->entries[i];

		if (!e->in_use)
			continue;
		if (!e->in_flight)
			e->maybe_present = false;
		e->isolate = false;
		if (entry_want_now(e, now)) {
			if (nftset_entry_mark_dirty(ns, e))
				*queued = true;
			n++;
		} else {
			nftset_shadow_settle(ns, e, now);
		}
	}
	ns->stats.reseeded += n;
	return n;
}

/* ---- the restore transaction ---- */

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
	nftset_tx_new_msg(tx, MSG_RESTORE, 0);
	nlh = nftnl_nlmsg_build_hdr(b->buf + b->off, type, NFPROTO_INET, flags | NLM_F_ACK,
	    tx->first_msg_seq + (uint32_t)(tx->nmsgs - 1));
	return nlh;
}

/*
 * nftset_restore_build - recreate the table as the ruleset defines it: the
 * table (NLM_F_EXCL: if it exists something else is wrong and we change
 * nothing), the four sets, the prerouting chain and its two drop rules.
 * Tier sets and the transparent/fast-path rules are not ours to rebuild:
 * reloading the ruleset does that.
 */
int
nftset_restore_build(struct nftset *ns)
{
	struct tx *tx = &ns->tx;
	struct nlbuf b = { .buf = tx->buf, .cap = TX_BUF_SIZE, .off = 0 };
	struct nftnl_table *t = nftnl_table_alloc();
	struct nftnl_chain *c = nftnl_chain_alloc();
	struct nftnl_udata_buf *ud = nftnl_udata_buf_alloc(64);
	struct nlmsghdr *nlh;
	int rc = -1;

	nftset_tx_reset(tx);
	tx->restore = true;
	if (t == NULL || c == NULL || ud == NULL)
		goto out;
	tx->begin_seq = ns->seq++;
	tx->first_msg_seq = ns->seq;
	nlbuf_batch_begin(&b, tx->begin_seq);

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
		nftnl_set_set_str(set, NFTNL_SET_NAME, nftset_set_names[s]);
		nftnl_set_set_u32(set, NFTNL_SET_FAMILY, NFPROTO_INET);
		nftnl_set_set_u32(set, NFTNL_SET_FLAGS, NFT_SET_TIMEOUT);
		nftnl_set_set_u32(set, NFTNL_SET_KEY_TYPE, (s & 1) ? 8 /* ipv6_addr */ : 7 /* ipv4_addr */);
		nftnl_set_set_u32(set, NFTNL_SET_KEY_LEN, nftset_key_len(s));
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
	nlbuf_batch_end(&b, ns->seq++);
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
		nftset_tx_reset(tx);
	return rc;
}

/*
 * nftset_restore_complete - the restore transaction is answered (begin_err:
 * the batch as a whole refused). Returns how long the writer is to stop
 * sending (a failed restore backs off), 0 for not at all; *queued as for
 * nftset_reseed_all.
 */
int64_t
nftset_restore_complete(struct nftset *ns, int begin_err, bool *queued)
{
	struct tx *tx = &ns->tx;
	int err = begin_err;

	for (size_t i = 0; i < tx->nmsgs && err == 0; i++)
		if (tx->msgs[i].err > 0)
			err = tx->msgs[i].err;
	nftset_tx_reset(tx);
	if (err == 0) {
		size_t n;

		ns->restore_needed = false;
		ns->missing_logged = false;
		ns->restore_backoff = 0;
		ns->missing_sets = 0;
		memset(ns->set_broken_until, 0, sizeof(ns->set_broken_until));
		ns->stats.restores++;
		n = nftset_reseed_all(ns, queued);
		log_info("nftset: recreated table inet %s (sets block4 block6 trust4 trust6, prerouting drop rules "
		    "for port %u); re-seeding %zu elements", ns->table, ns->port, n);
		return 0;
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
		int64_t until = nftset_now_ms() + ns->restore_backoff;

		for (unsigned s = 0; s < SET_COUNT; s++) {
			if (!(ns->missing_sets & (1u << s)))
				continue;
			ns->set_broken_until[s] = until;
			log_warn("nftset: set %s is missing from table inet %s; its changes are given up for %lld s "
			    "(reload the ruleset: mxtierctl rules | nft -f -)", nftset_set_names[s], ns->table,
			    (long long)(ns->restore_backoff / 1000));
		}
		ns->restore_needed = false;
		ns->missing_sets = 0;
		return 0;
	}
	nftset_log_error(ns, &ns->rl_error, "recreating the table failed", err);
	return ns->restore_backoff;
}
