#ifndef MXTIER_NFTSET_H
#define MXTIER_NFTSET_H

#include <stddef.h>
#include <stdint.h>

#include "netaddr.h"

/*
 * nftset - the kernel set writer. mxtierd adds and deletes elements of the
 * block and trust sets of `table inet <table>` (kernel-rules/ruleset.c prints
 * that table) in ACK-checked NEWSETELEM/DELSETELEM batches, from the event
 * loop, on a non-blocking NETLINK_NETFILTER socket. Failures are counted and
 * logged, never fatal: mail keeps flowing whatever the kernel says.
 *
 * Changes are coalesced per element in a bounded shadow table (the elements
 * mxtierd believes live, with their expiry), which is also what re-seeds the
 * sets when the table has to be recreated.
 */

struct event_base;

enum nftset_kind {
	NFTSET_BLOCK = 0,	/* block4 / block6 */
	NFTSET_TRUST,		/* trust4 / trust6 */
};

#define NFTSET_QUEUE_MAX	65536	/* pending changes and shadow elements */
#define NFTSET_MSG_ELEMS	256	/* elements per netlink message */
#define NFTSET_FLUSH_DELAY_MS	5	/* how long queued changes wait to share a batch */
#define NFTSET_TIMEOUT_MAX_MS	(366LL * 24 * 3600 * 1000)

struct nftset_stats {
	uint64_t	adds;		/* nftset_add calls accepted */
	uint64_t	dels;		/* nftset_del calls accepted */
	uint64_t	batches;	/* netlink transactions sent (BEGIN ... END) */
	uint64_t	acks_ok;	/* messages ACKed with error 0 */
	uint64_t	enoent;		/* ACKs with ENOENT (element, set or table missing) */
	uint64_t	enfile;		/* ACKs with ENFILE (set full) */
	uint64_t	other_errors;	/* any other error: ACK, send, receive, lost ACKs */
	uint64_t	queue_dropped;	/* changes refused because the queue was full */
	uint64_t	restores;	/* table, sets and rules recreated */
	uint64_t	reseeded;	/* elements re-sent from the shadow table after a restore or nftset_reseed */
};

struct nftset;

/*
 * nftset_open - a writer for `table inet <table>` on base; port is the SMTP
 * listen port the restored drop rules match. NULL (logged) on failure.
 */
struct nftset	*nftset_open(struct event_base *base, const char *table, uint16_t port);
/* nftset_close - free everything; changes not yet written are lost. */
void		 nftset_close(struct nftset *ns);

/*
 * nftset_add - queue an element with a timeout in milliseconds (0: no
 * timeout). IPv4-mapped IPv6 is written as IPv4, IPv6 as its /64. An element
 * already written gets its timeout replaced (DELSETELEM + NEWSETELEM, which
 * refreshes on Debian 12's 6.1 too). -1 for loopback (127/8, ::1 and so the
 * whole ::/64), a bad address or timeout, or a full queue (queue_dropped).
 */
int		 nftset_add(struct nftset *ns, enum nftset_kind kind, const struct netaddr *addr, int64_t timeout_ms);
/* nftset_del - queue the removal of an element; same address rules as nftset_add. */
int		 nftset_del(struct nftset *ns, enum nftset_kind kind, const struct netaddr *addr);
/* nftset_flush - send queued changes now instead of at the batching timer. */
void		 nftset_flush(struct nftset *ns);
/*
 * nftset_reseed - send every live element again, with its remaining
 * timeout; for after the ruleset was reloaded (a reload empties the sets).
 */
void		 nftset_reseed(struct nftset *ns);
/* nftset_pending - changes queued or sent and not yet acknowledged (0: in sync). */
size_t		 nftset_pending(const struct nftset *ns);
const struct nftset_stats *nftset_stats(const struct nftset *ns);
/* The sets, in the order nftset_elements counts them: block4, block6, trust4, trust6. */
#define NFTSET_SETS	4
void		 nftset_elements(const struct nftset *ns, uint64_t out[NFTSET_SETS]);
const char	*nftset_set_name(unsigned set);
/* nftset_error_text - strerror, except ENFILE, which the kernel means as "set full". */
const char	*nftset_error_text(int err);

#endif
