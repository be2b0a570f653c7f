/*
 * nftset_batch.c - the netlink batch builder of the kernel set writer: set
 * names and keys, and the one transaction of element changes the writer
 * sends.
 *
 * A transaction takes up to tx_elems_max dirty entries off the shadow
 * table's FIFO and writes them between BEGIN and END, NLM_F_ACK on every
 * message, at most NFTSET_MSG_ELEMS elements per message:
 *   1. DELSETELEM for every deletion and every refresh (a refresh deletes
 *      before it adds: re-adding an existing element refreshes its timeout
 *      on 6.18 but not on Debian's 6.1), set by set; elements marked to be
 *      isolated go one per message;
 *   2. NEWSETELEM (NLM_F_CREATE, never NLM_F_EXCL) for every add and every
 *      refresh, with its timeout, set by set;
 *   3. an empty NEWSETELEM "probe" for each set that only had deletions, so
 *      that ENOENT for a missing set is told apart from ENOENT for a missing
 *      element.
 * The sets are plain `flags timeout` sets, IPv6 keyed by the masked /64: no
 * interval elements. tx.msgs and tx.refs record which entries each message
 * holds, so that its ACK says what happened to exactly those.
 */
#include "nftset_internal.h"

#include <endian.h>
#include <string.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>

#include "log.h"

/* ---- sets and keys ---- */

const char *const nftset_set_names[SET_COUNT] = { "block4", "block6", "trust4", "trust6" };

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
 * nftset_key_normalize - the set key for addr: IPv4-mapped IPv6 as IPv4,
 * IPv6 masked to its /64; -1 for another family or a loopback address.
 */
int
nftset_key_normalize(const struct netaddr *addr, struct netaddr *key)
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

/* ---- netlink message encoding ---- */

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

int
nlbuf_batch_begin(struct nlbuf *b, uint32_t seq)
{
	if (b->off + NLMSG_HDRLEN + 4 > b->cap)
		return -1;
	b->off += nftnl_batch_begin(b->buf + b->off, seq)->nlmsg_len;
	return 0;
}

int
nlbuf_batch_end(struct nlbuf *b, uint32_t seq)
{
	if (b->off + NLMSG_HDRLEN + 4 > b->cap)
		return -1;
	b->off += nftnl_batch_end(b->buf + b->off, seq)->nlmsg_len;
	return 0;
}

/* ---- the transaction ---- */

void
nftset_tx_reset(struct tx *tx)
{
	tx->built = tx->active = tx->restore = false;
	tx->len = 0;
	tx->nmsgs = tx->acked = tx->nitems = tx->nrefs = 0;
}

/* nftset_tx_new_msg - the next ACKed message of the transaction; its sequence number is first_msg_seq + index. */
struct tx_msg *
nftset_tx_new_msg(struct tx *tx, uint8_t kind, uint8_t set)
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
tx_emit_elems(struct nftset *ns, struct nlbuf *b, unsigned set, uint8_t kind, bool alone)
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
			m = nftset_tx_new_msg(tx, kind, (uint8_t)set);
			nlh = elem_msg_begin(b, kind == MSG_NEW ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM,
			    kind == MSG_NEW ? NLM_F_CREATE | NLM_F_ACK : NLM_F_ACK, tx->first_msg_seq + (uint32_t)(tx->nmsgs - 1),
			    ns->table, nftset_set_names[set], &elems);
			if (nlh == NULL)
				return -1;
		}
		if (elem_msg_put(b, nlh, e->key, nftset_key_len(set), kind == MSG_NEW ? it->timeout_sent : 0) == -1)
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
 * tx_take_dirty - move dirty entries off the FIFO into tx.items, each with
 * the operation that brings the kernel to what is wanted; has_del/has_new
 * say which sets got which messages.
 */
static void
tx_take_dirty(struct nftset *ns, int64_t now, bool has_del[SET_COUNT], bool has_new[SET_COUNT])
{
	struct tx *tx = &ns->tx;
	size_t alone = 0;

	while (tx->nitems < ns->tx_elems_max && ns->dirty_head != SHADOW_NONE) {
		struct shadow_entry *e = &ns->entries[ns->dirty_head];
		bool want = entry_want_now(e, now), live = entry_kernel_live(e, now);
		struct tx_item *it;
		uint8_t op;

		if (e->isolate && live && alone >= TX_ISOLATED_MAX)
			break;
		nftset_dirty_pop(ns);
		if (ns->set_broken_until[e->set] > now) {
			nftset_shadow_settle(ns, e, now);	/* given up: its set is missing, see nftset_restore_complete */
			continue;
		}
		if (want)
			op = live ? TX_REFRESH : TX_ADD;
		else
			op = live ? TX_DEL : TX_NONE;
		if (op == TX_NONE) {
			e->maybe_present = false;
			nftset_shadow_settle(ns, e, now);
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
}

/*
 * nftset_batch_build - the daemon's batch builder: take dirty entries off
 * the FIFO and write them into tx.buf as one transaction (see the top of
 * this file). False if there was nothing to write.
 */
bool
nftset_batch_build(struct nftset *ns)
{
	struct tx *tx = &ns->tx;
	struct nlbuf b = { .buf = tx->buf, .cap = TX_BUF_SIZE, .off = 0 };
	int64_t now = nftset_now_ms();
	bool has_del[SET_COUNT] = { false }, has_new[SET_COUNT] = { false };

	nftset_tx_reset(tx);
	tx_take_dirty(ns, now, has_del, has_new);
	if (tx->nitems == 0)
		return false;

	tx->begin_seq = ns->seq++;
	tx->first_msg_seq = ns->seq;
	if (nlbuf_batch_begin(&b, tx->begin_seq) == -1)
		goto overflow;
	for (unsigned s = 0; s < SET_COUNT; s++) {
		if (has_del[s] && (tx_emit_elems(ns, &b, s, MSG_DEL, false) == -1 ||
		    tx_emit_elems(ns, &b, s, MSG_DEL, true) == -1))
			goto overflow;
	}
	for (unsigned s = 0; s < SET_COUNT; s++) {
		if (has_new[s] && tx_emit_elems(ns, &b, s, MSG_NEW, false) == -1)
			goto overflow;
	}
	for (unsigned s = 0; s < SET_COUNT; s++) {
		struct nlattr *elems;
		struct nlmsghdr *nlh;

		if (!has_del[s] || has_new[s])
			continue;
		nftset_tx_new_msg(tx, MSG_PROBE, (uint8_t)s);
		nlh = elem_msg_begin(&b, NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_ACK,
		    tx->first_msg_seq + (uint32_t)(tx->nmsgs - 1), ns->table, nftset_set_names[s], &elems);
		if (nlh == NULL)
			goto overflow;
		elem_msg_end(&b, nlh, elems);
	}
	ns->seq = tx->first_msg_seq + (uint32_t)tx->nmsgs;
	if (nlbuf_batch_end(&b, ns->seq++) == -1)
		goto overflow;
	tx->len = b.off;
	tx->built = true;
	return true;
overflow:
	/* The limits above make this impossible; a state that cannot happen. */
	fatalx("nftset: transaction of %zu elements does not fit %d bytes", tx->nitems, TX_BUF_SIZE);
}
