/*
 * dynamic_range.c - the client is in a network the operator listed as
 * dynamic (dynamic_ranges_file: one CIDR per line), e.g. a provider's
 * published access pools.
 */
#include "checks/check.h"
#include "facts.h"

static enum check_result
dynamic_range_run(const struct client_facts *f, enum reason *reason)
{
	if (!cidr_list_contains(&f->config->dynamic_ranges.list, &f->client))
		return CHECK_PASS;
	*reason = REASON_DYNAMIC_RANGE;
	return CHECK_SUSPECT;
}

const struct check check_dynamic_range = { "dynamic-range", CHECK_AT_GREETING, dynamic_range_run };
