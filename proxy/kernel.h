#ifndef MXTIER_KERNEL_H
#define MXTIER_KERNEL_H

#include "config.h"

/*
 * kernel_init - with kernel_sets = yes, open the nftables set writer and
 * route history blocks (and, with kernel_fast_path, passes) into the
 * kernel sets. Never fatal: without the sets the refusals still apply in
 * mxtierd itself.
 */
int	kernel_init(const struct config *c);
void	kernel_reconfigure(const struct config *c);
void	kernel_shutdown(void);

#endif
