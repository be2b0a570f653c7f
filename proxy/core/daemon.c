/* daemon.c - the daemon's one shared state and clock (kept out of main.c so tests can link the rest). */
#include "daemon.h"

#include <time.h>

static struct daemon daemon_state;
struct daemon *mxd = &daemon_state;

int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
