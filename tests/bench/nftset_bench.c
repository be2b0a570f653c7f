/*
 * nftset_bench.c - the driver tests/bench/nftset-bench runs inside its
 * network namespace: N elements through the kernel set writer, timed from
 * the first nftset_add to the last ACK, for each phase (IPv4 adds, IPv4
 * refreshes = DELSETELEM + NEWSETELEM, IPv6 /64 adds, IPv4 deletions),
 * repeated; the kernel's set is counted with nft after each phase.
 *
 * Usage: nftset_bench [-n ELEMENTS] [-r REPEAT] [-t TABLE]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "netaddr.h"
#include "nftset.h"

enum phase { PHASE_ADD4 = 0, PHASE_REFRESH4, PHASE_ADD6, PHASE_DEL4, PHASE_COUNT };

static const char *const phase_names[PHASE_COUNT] = {
	"IPv4 adds", "IPv4 refreshes (DEL+NEW)", "IPv6 /64 adds", "IPv4 deletions",
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
key(enum phase p, long i, struct netaddr *a)
{
	memset(a, 0, sizeof(*a));
	if (p == PHASE_ADD6) {
		a->family = AF_INET6;
		a->bytes[0] = 0x20;
		a->bytes[1] = 0x01;
		a->bytes[2] = 0x0d;
		a->bytes[3] = 0xb8;
		a->bytes[5] = (uint8_t)(i >> 16);
		a->bytes[6] = (uint8_t)(i >> 8);
		a->bytes[7] = (uint8_t)i;
		a->bytes[15] = 1;
	} else {
		a->family = AF_INET;
		a->bytes[0] = 10;
		a->bytes[1] = (uint8_t)(i >> 16);
		a->bytes[2] = (uint8_t)(i >> 8);
		a->bytes[3] = (uint8_t)i;
	}
}

/* kernel_count - elements nft lists in a set (each has a timeout). */
static long
kernel_count(const char *table, const char *set)
{
	char cmd[256], line[4096];
	long n = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "nft list set inet %s %s", table, set);
	if ((p = popen(cmd, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), p) != NULL)
		for (const char *s = line; (s = strstr(s, " timeout ")) != NULL; s++)
			n++;
	pclose(p);
	return n;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	long n = 10000, repeat = 3;
	const char *table = "mxtier";
	double rates[PHASE_COUNT][16];
	int opt, rc = 0;

	while ((opt = getopt(argc, argv, "n:r:t:")) != -1) {
		if (opt == 'n')
			n = atol(optarg);
		else if (opt == 'r')
			repeat = atol(optarg);
		else if (opt == 't')
			table = optarg;
		else
			return 2;
	}
	if (n < 1 || n > NFTSET_QUEUE_MAX || repeat < 1 || repeat > 16) {
		fprintf(stderr, "nftset_bench: -n 1..%d, -r 1..16\n", NFTSET_QUEUE_MAX);
		return 2;
	}

	for (long r = 0; r < repeat; r++) {
		struct event_base *base = event_base_new();
		struct nftset *ns = nftset_open(base, table, 2525);
		const struct nftset_stats *st;

		if (ns == NULL)
			return 1;
		st = nftset_stats(ns);
		for (int p = 0; p < PHASE_COUNT; p++) {
			struct netaddr a;
			double t0 = now_s(), elapsed;
			long expect;

			for (long i = 0; i < n; i++) {
				key((enum phase)p, i, &a);
				if ((p == PHASE_DEL4 ? nftset_del(ns, NFTSET_BLOCK, &a) :
				    nftset_add(ns, NFTSET_BLOCK, &a, p == PHASE_REFRESH4 ? 1200000 : 600000)) == -1) {
					fprintf(stderr, "nftset_bench: element %ld refused\n", i);
					return 1;
				}
			}
			nftset_flush(ns);
			while (nftset_pending(ns) > 0 && now_s() - t0 < 30)
				event_base_loop(base, EVLOOP_ONCE);
			elapsed = now_s() - t0;
			if (nftset_pending(ns) > 0) {
				fprintf(stderr, "nftset_bench: %s: not acknowledged after 30 s\n", phase_names[p]);
				return 1;
			}
			rates[p][r] = (double)n / elapsed;
			expect = p == PHASE_ADD6 ? n : (p == PHASE_DEL4 ? 0 : n);
			if (kernel_count(table, p == PHASE_ADD6 ? "block6" : "block4") != expect) {
				fprintf(stderr, "nftset_bench: %s: kernel set holds %ld elements, expected %ld\n",
				    phase_names[p], kernel_count(table, p == PHASE_ADD6 ? "block6" : "block4"), expect);
				rc = 1;
			}
			printf("run %ld  %-26s %6ld elements in %7.2f ms = %9.0f elements/s\n", r + 1, phase_names[p], n,
			    elapsed * 1000, rates[p][r]);
		}
		printf("run %ld  batches %llu, ACKs ok %llu, ENOENT %llu, ENFILE %llu, other errors %llu, dropped %llu\n",
		    r + 1, (unsigned long long)st->batches, (unsigned long long)st->acks_ok,
		    (unsigned long long)st->enoent, (unsigned long long)st->enfile, (unsigned long long)st->other_errors,
		    (unsigned long long)st->queue_dropped);
		if (st->other_errors || st->enoent || st->enfile || st->queue_dropped)
			rc = 1;
		/* Empty block6 for the next run. */
		for (long i = 0; i < n; i++) {
			struct netaddr a;

			key(PHASE_ADD6, i, &a);
			nftset_del(ns, NFTSET_BLOCK, &a);
		}
		nftset_flush(ns);
		while (nftset_pending(ns) > 0)
			event_base_loop(base, EVLOOP_ONCE);
		nftset_close(ns);
		event_base_free(base);
	}
	printf("\nmedian of %ld runs, %ld elements each:\n", repeat, n);
	for (int p = 0; p < PHASE_COUNT; p++) {
		qsort(rates[p], (size_t)repeat, sizeof(double), cmp_double);
		printf("  %-26s %9.0f elements/s\n", phase_names[p], rates[p][repeat / 2]);
	}
	return rc;
}
