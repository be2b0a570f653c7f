#ifndef MXTIER_STATS_H
#define MXTIER_STATS_H

#include <stdint.h>

#include "verdict.h"

/* Counters; updated where the event happens, printed on SIGUSR1 and at exit. */
struct stats {
	uint64_t	sessions;
	uint64_t	verdicts[VERDICT_COUNT];
	uint64_t	reasons[REASON_COUNT];
	uint64_t	messages_relayed;
	uint64_t	backend_failures;
	uint64_t	backend_probe_failures;
	uint64_t	accept_errors;
	uint64_t	accept_paused;
	uint64_t	dropped_overload;
};

void	stats_log(const struct stats *st);

#endif
