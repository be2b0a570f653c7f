#ifndef MXTIER_KERNEL_H
#define MXTIER_KERNEL_H

#include <stdbool.h>

#include "config.h"

/*
 * The engine's side: with kernel_sets = yes, history blocks (and, with
 * kernel_fast_path, passes) go to the privileged side as listing messages.
 * Never fatal: without the sets the refusals still apply in mxtierd itself.
 */
int	kernel_init(const struct config *c);
void	kernel_reconfigure(const struct config *c);
void	kernel_shutdown(void);

/*
 * The privileged side (the parent in a split, else the same process): the
 * nftables set writer. It checks every listing it gets: never loopback,
 * the backend, a tier or an own address; a TTL no longer than
 * block_ttl_max (blocks) or pass_ttl (trust); trust only with the fast path.
 */
int	kernel_priv_start(const struct config *c);
void	kernel_priv_reconfigure(const struct config *c);
void	kernel_priv_stop(void);
/* kernel_priv_stats - the set writer's counters and set sizes into the privileged side's counters. */
struct priv_parent_stats;
void	kernel_priv_stats(struct priv_parent_stats *out);
/* kernel_priv_excluded - addresses no listing (and no transparent source) may use. */
bool	kernel_priv_excluded(const struct netaddr *a, unsigned prefix_len);

#endif
