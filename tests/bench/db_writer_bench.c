/*
 * db_writer_bench.c - the privileged side's writer (db/dbstore*.c) on its
 * own event loop, fed synthetic session rows at a fixed rate, as the
 * parent is fed by the engine: how many rows/s it sustains into a real
 * PostgreSQL with reputation updated, and how late a 1 ms timer on the
 * same loop fires meanwhile (the loop's delay while it writes).
 *
 *   db_writer_bench CONNINFO APPLIANCE ROWS RATE [CONTACTS [BATCH [CLIENTS]]]
 *
 * RATE rows/s offered (0: as fast as the queue takes them); CONTACTS
 * contact news per row (default 2: the address and prefix keys, as a real
 * session sends); BATCH db_batch_size (default 500); CLIENTS distinct
 * client addresses, 256 per /24 (default ROWS). Session ids are
 * APPLIANCE-unique, so several processes can write one database. Prints:
 *   rows=N written_events=N dropped=N errors=N seconds=S rows_per_s=R (rows written)
 *   delay_p50_ms=.. delay_p99_ms=.. delay_max_ms=..
 * Bounded: gives up 60 s after the last row was offered.
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "db.h"
#include "db_rows.h"
#include "dbstore_internal.h"
#include "log.h"

#define BENCH_TICK_US		1000
#define BENCH_TICK_ROWS		200		/* 200,000 rows/s at most, far above what the writer takes */
#define BENCH_DELAYS_MAX	(10 * 60 * 1000)	/* ticks kept: ten minutes */
#define BENCH_GRACE_MS		60000
#define BENCH_IDLE_TICKS	2000		/* two seconds of the timer with nothing to write */

static struct {
	long		 rows, rate, contacts, clients;
	long		 offered;
	int64_t		 t_first, t_last_offer, t_next_tick_us;
	double		*delays;
	size_t		 ndelays;
	struct event	*tick;
	char		 appliance[64];
} bench;

static int64_t
mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* offer_row - session i as the engine would send it, and its contact news. */
static void
offer_row(long i)
{
	char id[96], started[48], ended[48], client[32], prefix[32], key[48];
	const char *v[DB_SESSION_FIELD_COUNT] = { NULL };
	const char *c[DB_CONTACT_FIELD_COUNT] = { NULL };
	long who = i % bench.clients;

	snprintf(id, sizeof(id), "%s-%010lx", bench.appliance, i);
	db_row_time(started, sizeof(started), -20);
	db_row_time(ended, sizeof(ended), 0);
	snprintf(client, sizeof(client), "10.%ld.%ld.%ld", (who >> 16) & 255, (who >> 8) & 255, who & 255);
	snprintf(prefix, sizeof(prefix), "10.%ld.%ld.0/24", (who >> 16) & 255, (who >> 8) & 255);
	v[DB_SESSION_ID] = id;
	v[DB_SESSION_APPLIANCE] = store.appliance;
	v[DB_SESSION_STARTED] = started;
	v[DB_SESSION_ENDED] = ended;
	v[DB_SESSION_TIER] = "bait";
	v[DB_SESSION_CLIENT] = client;
	v[DB_SESSION_PREFIX] = prefix;
	v[DB_SESSION_FCRDNS] = "false";
	v[DB_SESSION_HELO] = i % 3 ? "bot.example" : NULL;
	v[DB_SESSION_MAIL_FROM] = NULL;
	v[DB_SESSION_RCPT_COUNT] = "0";
	v[DB_SESSION_MESSAGES] = "0";
	v[DB_SESSION_VERDICT] = "tempfail";
	v[DB_SESSION_REASONS] = "{bait-first-contact}";
	v[DB_SESSION_DNSBL_SCORE] = "0";
	v[DB_SESSION_BYTES] = "0";
	v[DB_SESSION_DURATION_MS] = "20";
	dbstore_writer_push(DB_EVENT_SESSION, NULL, DB_SESSION_FIELD_COUNT, v);
	for (long k = 0; k < bench.contacts; k++) {
		snprintf(key, sizeof(key), k % 2 ? "p:%s" : "a:%s", k % 2 ? prefix : client);
		c[DB_CONTACT_KEY] = key;
		c[DB_CONTACT_BAIT] = ended;
		c[DB_CONTACT_CLEAR_PENDING] = "false";
		dbstore_writer_push(DB_EVENT_CONTACT, NULL, DB_CONTACT_FIELD_COUNT, c);
	}
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	int64_t now = mono_us();
	struct timeval tv = { 0, BENCH_TICK_US };
	long due;

	if (bench.t_next_tick_us && bench.ndelays < BENCH_DELAYS_MAX)
		bench.delays[bench.ndelays++] = (double)(now - bench.t_next_tick_us) / 1000.0;
	bench.t_next_tick_us = now + BENCH_TICK_US;
	if (bench.t_first == 0)
		bench.t_first = now;
	/* Rows due by now at RATE; with RATE 0, what the queue has room for. */
	if (bench.rate > 0)
		due = (long)((now - bench.t_first) * bench.rate / 1000000) + 1;
	else
		due = bench.offered + (long)(mxd->config->db_queue_size - (int64_t)dbstore_writer_queued()) /
		    (1 + bench.contacts);
	/* At most BENCH_TICK_ROWS a tick: the bench's own work must not be what delays the loop. */
	if (due > bench.offered + BENCH_TICK_ROWS)
		due = bench.offered + BENCH_TICK_ROWS;
	if (due > bench.rows)
		due = bench.rows;
	while (bench.offered < due)
		offer_row(bench.offered++);
	if (bench.offered == bench.rows && bench.t_last_offer == 0)
		bench.t_last_offer = now;
	if (bench.t_last_offer && (dbstore_writer_queued() == 0 || now - bench.t_last_offer > BENCH_GRACE_MS * 1000LL)) {
		event_base_loopbreak(mxd->base);
		return;
	}
	evtimer_add(bench.tick, &tv);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void
idle_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	int64_t now = mono_us();
	struct timeval tv = { 0, BENCH_TICK_US };

	if (bench.t_next_tick_us)
		bench.delays[bench.ndelays++] = (double)(now - bench.t_next_tick_us) / 1000.0;
	bench.t_next_tick_us = now + BENCH_TICK_US;
	if (bench.ndelays < BENCH_IDLE_TICKS)
		evtimer_add(bench.tick, &tv);
}

/* idle_delays - the 1 ms timer for BENCH_IDLE_TICKS ticks with the writer idle; printed, then forgotten. */
static void
idle_delays(void)
{
	struct event *tick = bench.tick;
	struct timeval tv = { 0, BENCH_TICK_US };

	bench.tick = evtimer_new(mxd->base, idle_tick_cb, NULL);
	evtimer_add(bench.tick, &tv);
	while (bench.ndelays < BENCH_IDLE_TICKS)
		event_base_loop(mxd->base, EVLOOP_ONCE);
	event_free(bench.tick);
	bench.tick = tick;
	qsort(bench.delays, bench.ndelays, sizeof(double), cmp_double);
	printf("idle_delay_p50_ms=%.2f idle_delay_p99_ms=%.2f ", bench.delays[bench.ndelays / 2],
	    bench.delays[(size_t)(bench.ndelays * 0.99)]);
	bench.ndelays = 0;
	bench.t_next_tick_us = 0;
}

int
main(int argc, char **argv)
{
	char text[4096], err[512];
	struct timeval tv = { 0, BENCH_TICK_US };
	struct event_config *ecfg;
	double secs;

	if (argc < 5) {
		fprintf(stderr, "usage: db_writer_bench CONNINFO APPLIANCE ROWS RATE [CONTACTS [BATCH [CLIENTS]]]\n");
		return 2;
	}
	snprintf(bench.appliance, sizeof(bench.appliance), "%s", argv[2]);
	bench.rows = atol(argv[3]);
	bench.rate = atol(argv[4]);
	bench.contacts = argc > 5 ? atol(argv[5]) : 2;
	bench.clients = argc > 7 ? atol(argv[7]) : bench.rows;
	if (bench.rows < 1 || bench.rows > 100000000 || bench.rate < 0 || bench.contacts < 0 || bench.contacts > 2 ||
	    bench.clients < 1) {
		fprintf(stderr, "db_writer_bench: ROWS 1..1e8, RATE >= 0, CONTACTS 0..2, CLIENTS >= 1\n");
		return 2;
	}
	snprintf(text, sizeof(text), "primary_ips = 127.0.0.10\ndatabase = %s\nappliance_name = %s\n"
	    "db_queue_size = 100000\ndb_batch_size = %s\ndb_flush_interval = 20ms\n", argv[1], argv[2],
	    argc > 6 ? argv[6] : "500");
	if ((mxd->config = config_load_string("bench.conf", text, err, sizeof(err))) == NULL) {
		fprintf(stderr, "db_writer_bench: %s\n", err);
		return 2;
	}
	/*
	 * A precise timer: by default libevent reads CLOCK_MONOTONIC_COARSE,
	 * whose ticks (4 ms here) would be measured instead of the loop.
	 */
	if ((ecfg = event_config_new()) != NULL && event_config_set_flag(ecfg, EVENT_BASE_FLAG_PRECISE_TIMER) == 0)
		mxd->base = event_base_new_with_config(ecfg);
	if (ecfg)
		event_config_free(ecfg);
	bench.delays = calloc(BENCH_DELAYS_MAX, sizeof(*bench.delays));
	bench.tick = evtimer_new(mxd->base, tick_cb, NULL);
	if (mxd->base == NULL || bench.delays == NULL || bench.tick == NULL || dbstore_start(mxd->config) == -1 ||
	    !store.enabled) {
		fprintf(stderr, "db_writer_bench: cannot start the writer (schema migrated?)\n");
		return 1;
	}
	/* Connected first, so the figure is the writer's, not the connect's. */
	while (store.writer.state != DBC_UP)
		event_base_loop(mxd->base, EVLOOP_ONCE);
	/* The same timer with nothing to write first: what this machine's scheduling alone costs. */
	idle_delays();
	evtimer_add(bench.tick, &tv);
	event_base_dispatch(mxd->base);
	secs = (double)(mono_us() - bench.t_first) / 1e6;
	qsort(bench.delays, bench.ndelays, sizeof(double), cmp_double);
	/* rows_per_s: the session rows written (offered less dropped) per second, first offer to last confirmed. */
	printf("rows=%ld written_events=%llu dropped=%llu errors=%llu seconds=%.3f rows_per_s=%.0f "
	    "delay_p50_ms=%.2f delay_p99_ms=%.2f delay_max_ms=%.2f\n", bench.offered,
	    (unsigned long long)store.stats.written, (unsigned long long)store.stats.sessions_dropped,
	    (unsigned long long)store.stats.errors, secs, (double)(bench.offered - (long)store.stats.sessions_dropped) / secs,
	    bench.ndelays ? bench.delays[bench.ndelays / 2] : 0.0,
	    bench.ndelays ? bench.delays[(size_t)(bench.ndelays * 0.99)] : 0.0,
	    bench.ndelays ? bench.delays[bench.ndelays - 1] : 0.0);
	dbstore_stop();
	event_free(bench.tick);
	free(bench.delays);
	return 0;
}
