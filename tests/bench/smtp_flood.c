/*
 * smtp_flood.c - a flood of short SMTP sessions, each from its own
 * loopback source address, the way a botnet hits a bait MX: connect, read
 * the greeting, QUIT, close. For the benchmarks and the writer's tests.
 *
 *   smtp_flood HOST PORT SESSIONS [CONCURRENCY [FIRST_SOURCE]]
 *
 * Sources count up from FIRST_SOURCE (default 127.64.0.1), skipping .0 and
 * .255, so SESSIONS sessions come from SESSIONS addresses. Prints one line:
 *   sessions=N ok=N failed=N seconds=S rate=R first_epoch=T0 last_epoch=T1
 * (last_epoch: wall clock when the last session closed). Every socket has a
 * timeout (5 s); the run is bounded by SESSIONS.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define FLOOD_CONC_MAX		1024
#define FLOOD_TIMEOUT_MS	5000

enum flood_state {
	FLOOD_IDLE = 0,
	FLOOD_CONNECTING,
	FLOOD_GREETING,		/* waiting for the first reply line */
	FLOOD_QUITTING		/* QUIT sent: waiting for the close */
};

struct flood_conn {
	int			 fd;
	enum flood_state	 state;
	double			 started;
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
wall_s(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return tv.tv_sec + tv.tv_usec / 1e6;
}

/* source_next - the next loopback source, skipping host parts 0 and 255. */
static uint32_t
source_next(uint32_t *src)
{
	do
		(*src)++;
	while ((*src & 0xff) == 0 || (*src & 0xff) == 255);
	return *src;
}

static int
flood_open(struct flood_conn *c, const struct sockaddr_in *dst, uint32_t src)
{
	struct sockaddr_in from = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(src) };
	int one = 1;

	if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) == -1)
		return -1;
	setsockopt(c->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(c->fd, (const struct sockaddr *)&from, sizeof(from)) == -1 ||
	    (connect(c->fd, (const struct sockaddr *)dst, sizeof(*dst)) == -1 && errno != EINPROGRESS)) {
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	c->state = FLOOD_CONNECTING;
	c->started = now_s();
	return 0;
}

static void
flood_close(struct flood_conn *c)
{
	close(c->fd);
	c->fd = -1;
	c->state = FLOOD_IDLE;
}

/* flood_step - progress on one connection; 1 done ok, -1 failed, 0 not yet. */
static int
flood_step(struct flood_conn *c)
{
	char buf[512];
	ssize_t n;

	if (c->state == FLOOD_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 || err != 0)
			return -1;
		c->state = FLOOD_GREETING;
		return 0;
	}
	n = read(c->fd, buf, sizeof(buf) - 1);
	if (n == -1 && errno == EAGAIN)
		return 0;
	/* After the greeting a reset is a close too: a 421 closes without waiting for our QUIT. */
	if (c->state == FLOOD_QUITTING)
		return n <= 0 ? 1 : 0;
	if (n == -1)
		return -1;
	if (c->state == FLOOD_GREETING) {
		if (n == 0)
			return -1;
		buf[n] = '\0';
		if (strchr(buf, '\n') == NULL)
			return 0;
		/* The greeting (220 or 421): say goodbye, as a polite bot would. */
		if (write(c->fd, "QUIT\r\n", 6) != 6 || strncmp(buf, "421", 3) == 0)
			return 1;
		c->state = FLOOD_QUITTING;
		return 0;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct sockaddr_in dst = { .sin_family = AF_INET };
	struct flood_conn conns[FLOOD_CONC_MAX];
	struct pollfd pfd[FLOOD_CONC_MAX];
	struct in_addr first;
	long total, conc, started = 0, ok = 0, failed = 0;
	uint32_t src;
	double t0, t0_wall, last_wall = 0;

	if (argc < 4) {
		fprintf(stderr, "usage: smtp_flood HOST PORT SESSIONS [CONCURRENCY [FIRST_SOURCE]]\n");
		return 2;
	}
	if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1 || inet_pton(AF_INET, argc > 5 ? argv[5] : "127.64.0.1",
	    &first) != 1) {
		fprintf(stderr, "smtp_flood: not an IPv4 address\n");
		return 2;
	}
	dst.sin_port = htons((uint16_t)atoi(argv[2]));
	total = atol(argv[3]);
	conc = argc > 4 ? atol(argv[4]) : 50;
	if (total < 1 || total > 10000000 || conc < 1 || conc > FLOOD_CONC_MAX) {
		fprintf(stderr, "smtp_flood: SESSIONS 1..10000000, CONCURRENCY 1..%d\n", FLOOD_CONC_MAX);
		return 2;
	}
	src = ntohl(first.s_addr) - 1;
	for (long i = 0; i < conc; i++)
		conns[i] = (struct flood_conn){ .fd = -1 };
	t0 = now_s();
	t0_wall = wall_s();
	while (ok + failed < total) {
		int n = 0, ready;

		for (long i = 0; i < conc; i++) {
			if (conns[i].fd == -1 && started < total) {
				started++;
				if (flood_open(&conns[i], &dst, source_next(&src)) == -1) {
					failed++;
					continue;
				}
			}
			if (conns[i].fd == -1)
				continue;
			pfd[n].fd = conns[i].fd;
			pfd[n].events = conns[i].state == FLOOD_CONNECTING ? POLLOUT : POLLIN;
			pfd[n].revents = 0;
			n++;
		}
		if (n == 0)
			continue;
		if ((ready = poll(pfd, (nfds_t)n, 100)) == -1 && errno != EINTR)
			break;
		for (long i = 0, k = 0; i < conc; i++) {
			int rc;

			if (conns[i].fd == -1)
				continue;
			rc = pfd[k].revents ? flood_step(&conns[i]) : 0;
			k++;
			if (rc == 0 && (now_s() - conns[i].started) * 1000 > FLOOD_TIMEOUT_MS)
				rc = -1;
			if (rc == 0)
				continue;
			flood_close(&conns[i]);
			if (rc == 1)
				ok++;
			else
				failed++;
			last_wall = wall_s();
		}
	}
	{
		double secs = now_s() - t0;

		printf("sessions=%ld ok=%ld failed=%ld seconds=%.3f rate=%.1f first_epoch=%.3f last_epoch=%.3f\n", total,
		    ok, failed, secs, secs > 0 ? ok / secs : 0.0, t0_wall, last_wall);
	}
	return failed == total ? 1 : 0;
}
