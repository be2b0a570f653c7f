/*
 * shed.c - load shedding at the primary: the 1-minute load average over
 * shed_loadavg, active sessions over shed_sessions, or the backend down
 * turn it on; it turns off only when all are back under 80% of their
 * threshold (hysteresis), so it does not flap. Entry and exit are logged.
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>

#include "daemon.h"
#include "log.h"

#define SHED_TICK_MS		1000
#define SHED_EXIT_PERCENT	80

static struct event *shed_timer;

static void
shed_tick(evutil_socket_t fd, short what, void *arg)
{
	const struct config *c = mxd->config;
	struct timeval tv = { SHED_TICK_MS / 1000, (SHED_TICK_MS % 1000) * 1000 };
	double load = 0;
	int64_t load100, sessions = (int64_t)mxd->active_sessions;
	bool load_over, load_under, sessions_over, sessions_under;

	if (getloadavg(&load, 1) < 1)
		load = 0;
	load100 = (int64_t)(load * 100);
	load_over = c->shed_loadavg > 0 && load100 >= c->shed_loadavg;
	load_under = c->shed_loadavg == 0 || load100 * 100 < c->shed_loadavg * SHED_EXIT_PERCENT;
	sessions_over = c->shed_sessions > 0 && sessions >= c->shed_sessions;
	sessions_under = c->shed_sessions == 0 || sessions * 100 < c->shed_sessions * SHED_EXIT_PERCENT;

	if (!mxd->shedding && (load_over || sessions_over || !mxd->backend_up)) {
		mxd->shedding = true;
		mxd->shed_reason = mxd->backend_up ? REASON_LOAD_SHED : REASON_BACKEND_DOWN;
		mxd->stats.load_shed_entries++;
		char load_limit[32], sessions_limit[32];

		snprintf(load_limit, sizeof(load_limit), c->shed_loadavg ? "%.2f" : "off", c->shed_loadavg / 100.0);
		snprintf(sessions_limit, sizeof(sessions_limit), c->shed_sessions ? "%lld" : "off",
		    (long long)c->shed_sessions);
		log_warn("load shedding on at the primary: load %.2f (limit %s), sessions %lld (limit %s), backend %s",
		    load, load_limit, (long long)sessions, sessions_limit, mxd->backend_up ? "up" : "down");
	} else if (mxd->shedding && load_under && sessions_under && mxd->backend_up) {
		mxd->shedding = false;
		log_info("load shedding off: load %.2f, sessions %lld, backend up", load, (long long)sessions);
	} else if (mxd->shedding) {
		mxd->shed_reason = mxd->backend_up ? REASON_LOAD_SHED : REASON_BACKEND_DOWN;
	}
	evtimer_add(shed_timer, &tv);
}

int
shed_start(void)
{
	struct timeval tv = { SHED_TICK_MS / 1000, (SHED_TICK_MS % 1000) * 1000 };

	shed_timer = evtimer_new(mxd->base, shed_tick, NULL);
	if (shed_timer == NULL)
		return -1;
	evtimer_add(shed_timer, &tv);
	return 0;
}

void
shed_stop(void)
{
	if (shed_timer) {
		event_free(shed_timer);
		shed_timer = NULL;
	}
}
