#ifndef MXTIER_RULESET_H
#define MXTIER_RULESET_H

#include <stdio.h>

#include "config.h"

/* Routing mark and table that TPROXY needs to deliver intercepted packets locally. */
#define RULESET_TPROXY_MARK	1
#define RULESET_TPROXY_TABLE	100

/*
 * ruleset_print - the complete nftables ruleset for config c, in nft's
 * own syntax, atomically replacing the table when loaded with `nft -f`.
 */
void	ruleset_print(const struct config *c, FILE *out);
/* ruleset_print_routing - the policy routing commands transparent mode needs. */
void	ruleset_print_routing(FILE *out);

#endif
