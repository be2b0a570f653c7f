/*
 * fuzz_session.c - libFuzzer harness for a whole client session: the
 * command reader, the command table, the DATA reader and the relay to a
 * backend, driven for real through the event loop as
 * tests/unit/test_session.c does. The client is one end of a socketpair;
 * the backend is a small SMTP server inside this process on a loopback
 * port, which checks every byte mxtierd sends it.
 *
 * Input: byte 0 chooses the write sizes (see fuzz_splitter in fuzz.h);
 * with its top bit clear a write also ends at each LF, like a client that
 * waits for every reply, with it set commands are pipelined freely. The
 * rest is what the client sends after connecting. After each write
 * the loop runs until nothing moves for a few milliseconds (the backend
 * round trips included); at the end the client hangs up and the session
 * must free itself (LeakSanitizer checks what it left).
 *
 * Invariants checked (abort on violation):
 *  - every reply line mxtierd sends the client is "ddd" or "ddd text" /
 *    "ddd-text" with a 2xx..5xx code, at most 512 octets, CRLF-ended,
 *    with no NUL, bare CR or bare LF, the same code on every line of a
 *    multi-line reply;
 *  - every command the backend gets is a known verb on one CRLF line of
 *    at most 512 octets (XCLIENT, whose values are xtext, up to 2048);
 *  - message data the backend gets has no NUL, bare CR or bare LF, no
 *    line over 1000 octets, and it never gets more end-of-data lines than
 *    the client sent CRLF "." CRLF sequences: no smuggled second message;
 *  - after the client hangs up, the session is gone within 5 s.
 *
 * Seeds: fuzz/corpus/session/ (one control byte, then the client's bytes).
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client_table.h"
#include "config.h"
#include "daemon.h"
#include "fuzz.h"
#include "relay.h"
#include "session.h"

#define QUIET_MS	2	/* nothing moved for this long: the exchange is over */
#define SETTLE_MAX_MS	2000	/* cap on one settle, so a stuck exchange cannot stall the fuzzer */
#define FREE_MAX_MS	5000	/* the session must be gone this long after the hang-up */

/* ---- the backend: one SMTP server in this process ---- */

enum backend_mode {
	BACKEND_COMMAND = 0,
	BACKEND_DATA
};

struct backend_conn {
	struct bufferevent	*bev;
	enum backend_mode	 mode;
	char			 line[2100];
	size_t			 len;		/* octets of the current line so far */
	bool			 line_too_long;
	struct backend_conn	*next;
};

static int backend_fd = -1;
static uint16_t backend_port;
static struct event *backend_accept_ev;
static struct backend_conn *backend_conns;
static size_t backend_messages;		/* end-of-data lines the backend got in this run */
static bool moved;			/* any I/O since the last quiet check */

static void
backend_send(struct backend_conn *c, const char *text)
{
	bufferevent_write(c->bev, text, strlen(text));
}

/* backend_command - one command line (CRLF included) from mxtierd. */
static void
backend_command(struct backend_conn *c, const char *line, size_t n)
{
	static const char *const verbs[] = { "EHLO ", "HELO ", "MAIL FROM:<", "RCPT TO:<", "DATA\r", "RSET\r",
	    "QUIT\r", "NOOP\r", "XCLIENT ", "STARTTLS\r" };
	bool known = false;

	FUZZ_CHECK(n <= (strncmp(line, "XCLIENT ", 8) == 0 ? 2048 : 512), "backend command of %zu octets", n);
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strncmp(line, verbs[i], strlen(verbs[i])) == 0)
			known = true;
	FUZZ_CHECK(known, "backend got an unexpected command: %.*s", (int)(n > 80 ? 80 : n), line);
	if (strncmp(line, "EHLO ", 5) == 0)
		backend_send(c, "250-backend.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 100000\r\n");
	else if (strncmp(line, "HELO ", 5) == 0)
		backend_send(c, "250 backend.test\r\n");
	else if (strncmp(line, "DATA\r", 5) == 0) {
		backend_send(c, "354 go ahead\r\n");
		c->mode = BACKEND_DATA;
	} else if (strncmp(line, "QUIT\r", 5) == 0)
		backend_send(c, "221 2.0.0 bye\r\n");
	else if (strncmp(line, "STARTTLS\r", 9) == 0)
		backend_send(c, "454 4.7.0 no TLS here\r\n");
	else if (strncmp(line, "RCPT TO:<reject", 15) == 0)
		backend_send(c, "550 5.1.1 no such user\r\n");
	else
		backend_send(c, "250 2.0.0 ok\r\n");
}

static void
backend_read_cb(struct bufferevent *bev, void *arg)
{
	struct backend_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	unsigned char buf[4096];
	int n;

	moved = true;
	while ((n = evbuffer_remove(in, buf, sizeof(buf))) > 0) {
		for (int i = 0; i < n; i++) {
			char ch = (char)buf[i];
			bool prev_cr = c->len > 0 && c->line[c->len - 1] == '\r';

			FUZZ_CHECK(ch != '\0', "NUL sent to the backend");
			FUZZ_CHECK(!prev_cr || ch == '\n', "bare CR sent to the backend");
			FUZZ_CHECK(ch != '\n' || prev_cr, "bare LF sent to the backend");
			if (c->len < sizeof(c->line))
				c->line[c->len] = ch;
			c->len++;
			if (ch != '\n')
				continue;
			if (c->mode == BACKEND_DATA) {
				FUZZ_CHECK(c->len <= 1000, "data line of %zu octets sent to the backend", c->len);
				if (c->len == 3 && c->line[0] == '.') {
					backend_messages++;
					backend_send(c, "250 2.0.0 queued\r\n");
					c->mode = BACKEND_COMMAND;
				}
			} else {
				FUZZ_CHECK(c->len <= sizeof(c->line), "command line of %zu octets", c->len);
				backend_command(c, c->line, c->len);
			}
			c->len = 0;
		}
	}
}

static void
backend_conn_free(struct backend_conn *c)
{
	struct backend_conn **pp;

	for (pp = &backend_conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	bufferevent_free(c->bev);
	free(c);
}

static void
backend_event_cb(struct bufferevent *bev, short what, void *arg)
{
	moved = true;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		backend_conn_free(arg);
}

static void
backend_accept_cb(evutil_socket_t fd, short what, void *arg)
{
	int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct backend_conn *c;

	if (cfd == -1)
		return;
	moved = true;
	c = calloc(1, sizeof(*c));
	FUZZ_CHECK(c != NULL, "out of memory");
	c->bev = bufferevent_socket_new(mxd->base, cfd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(c->bev, backend_read_cb, NULL, backend_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->next = backend_conns;
	backend_conns = c;
	backend_send(c, "220 backend.test ESMTP\r\n");
}

/* ---- the client end ---- */

struct client {
	int	fd;
	char	line[4096];
	size_t	len;		/* octets of the reply line being read */
	int	code;		/* of the multi-line reply in progress, 0 between replies */
	bool	eof;
};

/* client_line - one reply line (CRLF included) from mxtierd. */
static void
client_line(struct client *c, const char *l, size_t n)
{
	int code;

	FUZZ_CHECK(n <= 512, "reply line of %zu octets", n);
	FUZZ_CHECK(n >= 5 && l[0] >= '2' && l[0] <= '5' && l[1] >= '0' && l[1] <= '9' && l[2] >= '0' &&
	    l[2] <= '9', "reply line without a code: %.*s", (int)n, l);
	FUZZ_CHECK(n == 5 || l[3] == ' ' || l[3] == '-', "reply separator: %.*s", (int)n, l);
	code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	FUZZ_CHECK(c->code == 0 || c->code == code, "code %d inside a %d reply", code, c->code);
	c->code = n > 5 && l[3] == '-' ? code : 0;
}

static void
client_read(struct client *c)
{
	char buf[4096];
	ssize_t n;

	while (!c->eof && (n = read(c->fd, buf, sizeof(buf))) != 0) {
		if (n == -1) {
			if (errno == ECONNRESET)
				c->eof = true;
			break;
		}
		moved = true;
		for (ssize_t i = 0; i < n; i++) {
			bool prev_cr = c->len > 0 && c->line[c->len - 1] == '\r';

			FUZZ_CHECK(buf[i] != '\0', "NUL in a reply");
			FUZZ_CHECK(!prev_cr || buf[i] == '\n', "bare CR in a reply");
			FUZZ_CHECK(buf[i] != '\n' || prev_cr, "bare LF in a reply");
			FUZZ_CHECK(c->len < sizeof(c->line), "reply line over %zu octets", sizeof(c->line));
			c->line[c->len++] = buf[i];
			if (buf[i] == '\n') {
				client_line(c, c->line, c->len);
				c->len = 0;
			}
		}
	}
	if (n == 0)
		c->eof = true;
}

/* settle - run the loop until nothing moved for QUIET_MS (bounded by SETTLE_MAX_MS). */
static void
settle(struct client *c)
{
	int64_t start = now_ms(), quiet_since = now_ms();

	while (now_ms() - start < SETTLE_MAX_MS) {
		struct pollfd pfd = { c->fd, POLLIN, 0 };

		moved = false;
		event_base_loop(mxd->base, EVLOOP_NONBLOCK);
		if (c->fd != -1)
			client_read(c);
		if (moved)
			quiet_since = now_ms();
		else if (now_ms() - quiet_since >= QUIET_MS)
			return;
		if (c->fd != -1)
			poll(&pfd, 1, 1);
		else
			usleep(500);
	}
}

static size_t
count_ends(const uint8_t *p, size_t n)
{
	size_t ends = 0;

	/* "\n.\r\n": every end-of-data the client sent (its line before ended in LF). */
	for (size_t i = 0; i + 4 <= n; i++)
		if (memcmp(p + i, "\n.\r\n", 4) == 0)
			ends++;
	return ends;
}

static void
fuzz_init(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	char text[1024], err[512];

	signal(SIGPIPE, SIG_IGN);
	mxd->base = event_base_new();
	mxd->clients = client_table_new();
	FUZZ_CHECK(mxd->base && mxd->clients, "daemon state");

	backend_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	FUZZ_CHECK(backend_fd != -1 && bind(backend_fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    listen(backend_fd, 64) == 0 && getsockname(backend_fd, (struct sockaddr *)&sin, &len) == 0,
	    "backend socket: %s", strerror(errno));
	backend_port = ntohs(sin.sin_port);
	backend_accept_ev = event_new(mxd->base, backend_fd, EV_READ | EV_PERSIST, backend_accept_cb, NULL);
	event_add(backend_accept_ev, NULL);

	snprintf(text, sizeof(text),
	    "primary_ips = 127.0.0.1\n"
	    "hostname = mx.fuzz.test\n"
	    "greet_wait = 0\n"
	    "backend = 127.0.0.1:%u\n"
	    "backend_connect_timeout = 2s\n"
	    "backend_timeout = 2s\n"
	    "message_size_limit = 4k\n"
	    "max_recipients = 100\n", backend_port);
	mxd->config = config_load_string("fuzz-session.conf", text, err, sizeof(err));
	FUZZ_CHECK(mxd->config != NULL, "config refused: %s", err);
	/* As if the health probe had read the backend's EHLO: 8BITMIME and PIPELINING offered. */
	mxd->backend_up = true;
	mxd->backend_caps.known = true;
	mxd->backend_caps.pipelining = true;
	mxd->backend_caps.eightbitmime = true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct fuzz_splitter sp;
	struct sockaddr_in peer;
	struct client c;
	size_t pos = 1, stalls = 0;
	bool line_wise;
	int sv[2];
	int64_t deadline;

	if (size < 1)
		return 0;
	if (!ready) {
		fuzz_init();
		ready = true;
	}
	fuzz_splitter_init(&sp, data[0]);
	line_wise = !(data[0] & 0x80);
	backend_messages = 0;

	FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0, "socketpair: %s", strerror(errno));
	memset(&c, 0, sizeof(c));
	c.fd = sv[1];
	memset(&peer, 0, sizeof(peer));
	peer.sin_family = AF_INET;
	peer.sin_port = htons(40312);
	peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	session_accept(sv[0], (struct sockaddr *)&peer, TIER_PRIMARY);
	settle(&c);

	while (pos < size && !c.eof && stalls < 3) {
		size_t n = fuzz_splitter_next(&sp);
		ssize_t w;

		if (n > size - pos)
			n = size - pos;
		if (line_wise) {
			const uint8_t *lf = memchr(data + pos, '\n', n);

			if (lf)
				n = (size_t)(lf - (data + pos)) + 1;
		}
		w = write(c.fd, data + pos, n);
		if (w == -1 && errno == EAGAIN) {
			stalls++;	/* mxtierd stopped reading (back-pressure): let it catch up */
			settle(&c);
			continue;
		}
		if (w == -1)
			break;		/* the session closed its end */
		stalls = 0;
		pos += (size_t)w;
		settle(&c);
	}

	/* The client hangs up: the session must go away by itself. */
	close(c.fd);
	c.fd = -1;
	deadline = now_ms() + FREE_MAX_MS;
	while (mxd->active_sessions > 0 && now_ms() < deadline) {
		event_base_loop(mxd->base, EVLOOP_NONBLOCK);
		usleep(200);
	}
	FUZZ_CHECK(mxd->active_sessions == 0, "%zu sessions left 5 s after the client hung up",
	    mxd->active_sessions);
	/*
	 * The relay gave its backend connection back to the pool or closed it;
	 * one run's pool is not the next run's: empty it, then wait for the
	 * backend side to see every connection go.
	 */
	relay_pool_flush("fuzz run over");
	deadline = now_ms() + FREE_MAX_MS;
	while (backend_conns != NULL && now_ms() < deadline) {
		event_base_loop(mxd->base, EVLOOP_NONBLOCK);
		usleep(200);
	}
	FUZZ_CHECK(backend_conns == NULL, "a backend connection left open after the session ended");
	FUZZ_CHECK(backend_messages <= count_ends(data + 1, size - 1),
	    "backend got %zu messages, the client sent %zu end-of-data lines", backend_messages,
	    count_ends(data + 1, size - 1));
	return 0;
}
