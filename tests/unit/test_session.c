/*
 * test_session.c - the command table and state transitions driven for
 * real: a session on one end of a socketpair, the event loop run by the
 * test, commands written on the other end and the replies read back.
 * The backend is a local port where nothing listens.
 */
#include "unit.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client_table.h"
#include "config.h"
#include "daemon.h"
#include "session.h"

#define HOST		"mx.test"
#define WAIT_MS		3000	/* longest wait for one expected reply */
#define QUIET_MS	60	/* after the last step: no unexpected reply may follow */
#define MAX_STEPS	12
#define MAX_REPLIES	8

static uint16_t dead_port;	/* a local port where nothing listens */

/* ---- the client end ---- */

struct client {
	int	fd;
	char	buf[256 * 1024];
	size_t	len;		/* bytes received, not yet taken as replies */
	bool	eof;
};

/* pump - run the loop once without blocking, then read what the session wrote. */
static void
pump(struct client *c)
{
	struct pollfd pfd = { c->fd, POLLIN, 0 };

	event_base_loop(mxd->base, EVLOOP_NONBLOCK);
	if (c->fd == -1)
		return;
	while (!c->eof && c->len < sizeof(c->buf)) {
		ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);

		if (n > 0)
			c->len += (size_t)n;
		else if (n == 0)
			c->eof = true;
		else
			break;
	}
	poll(&pfd, 1, 1);
}

/* take_reply - the first complete reply (all its lines) out of the buffer; false if none yet. */
static bool
take_reply(struct client *c, char *out, size_t outlen)
{
	size_t pos = 0;

	while (pos < c->len) {
		char *lf = memchr(c->buf + pos, '\n', c->len - pos);
		size_t linelen;

		if (lf == NULL)
			return false;
		linelen = (size_t)(lf - (c->buf + pos)) + 1;
		if (linelen < 6 || c->buf[pos + 3] == ' ') {
			size_t end = pos + linelen, n = end < outlen ? end : outlen - 1;

			memcpy(out, c->buf, n);
			out[n] = '\0';
			memmove(c->buf, c->buf + end, c->len - end);
			c->len -= end;
			return true;
		}
		pos += linelen;
	}
	return false;
}

static bool
wait_reply(struct client *c, char *out, size_t outlen, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;

	for (;;) {
		if (take_reply(c, out, outlen))
			return true;
		if (now_ms() >= deadline || c->eof)
			return false;
		pump(c);
	}
}

static void
client_send(struct client *c, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(c->fd, data, len);

		if (n == -1 && errno == EAGAIN) {
			pump(c);
			continue;
		}
		assert_true(n > 0);
		data += n;
		len -= (size_t)n;
	}
}

/* ---- daemon state for the tests ---- */

/* make_config - the test defaults, each overridden by a line of extra setting the same key. */
static struct config *
make_config(const char *extra)
{
	char base[6][128], text[2048], err[512];
	size_t used = 0;
	struct config *c;

	snprintf(base[0], sizeof(base[0]), "primary_ips = 127.0.0.1, 127.0.0.3\n");
	snprintf(base[1], sizeof(base[1]), "bait_ips = 127.0.0.2\n");
	snprintf(base[2], sizeof(base[2]), "hostname = " HOST "\n");
	snprintf(base[3], sizeof(base[3]), "greet_wait = 0\n");
	snprintf(base[4], sizeof(base[4]), "backend = 127.0.0.1:%u\n", dead_port);
	snprintf(base[5], sizeof(base[5]), "backend_connect_timeout = 2s\n");
	text[0] = '\0';
	for (size_t i = 0; i < 6; i++) {
		size_t keylen = strcspn(base[i], " =");
		bool overridden = false;

		for (const char *p = extra; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : "")
			if (strncmp(p, base[i], keylen) == 0 && (p[keylen] == ' ' || p[keylen] == '='))
				overridden = true;
		if (!overridden)
			used += (size_t)snprintf(text + used, sizeof(text) - used, "%s", base[i]);
	}
	snprintf(text + used, sizeof(text) - used, "%s", extra ? extra : "");
	c = config_load_string("session-test.conf", text, err, sizeof(err));
	if (c == NULL)
		fail_msg("test config refused: %s", err);
	return c;
}

static int
setup(void **state)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	signal(SIGPIPE, SIG_IGN);
	/* Bind an ephemeral port and close it: nothing listens there afterwards. */
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) == -1)
		return -1;
	dead_port = ntohs(sin.sin_port);
	close(fd);

	mxd->base = event_base_new();
	mxd->clients = client_table_new();
	mxd->config = make_config(NULL);
	return mxd->base && mxd->clients && mxd->config ? 0 : -1;
}

static int
teardown(void **state)
{
	config_unref(mxd->config);
	mxd->config = NULL;
	client_table_free(mxd->clients);
	mxd->clients = NULL;
	event_base_free(mxd->base);
	mxd->base = NULL;
	return 0;
}

/* client_connect - a socketpair; the session gets one end as if accepted from 127.0.0.1:40312. */
static void
client_connect(struct client *c, enum tier_role tier)
{
	struct sockaddr_in peer;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	memset(c, 0, sizeof(*c));
	c->fd = sv[1];
	memset(&peer, 0, sizeof(peer));
	peer.sin_family = AF_INET;
	peer.sin_port = htons(40312);
	peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	session_accept(sv[0], (struct sockaddr *)&peer, tier);
}

/* client_connect_small_buffer - the same, with a small send buffer on the session's end, so its writes fall short. */
static void
client_connect_small_buffer(struct client *c, int sndbuf)
{
	struct sockaddr_in peer;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
	memset(c, 0, sizeof(*c));
	c->fd = sv[1];
	memset(&peer, 0, sizeof(peer));
	peer.sin_family = AF_INET;
	peer.sin_port = htons(40313);
	peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	session_accept(sv[0], (struct sockaddr *)&peer, TIER_PRIMARY);
}

/* client_finish - hang up and let the session free itself; true when only `left` sessions remain. */
static bool
client_finish_leaving(struct client *c, size_t left)
{
	int64_t deadline = now_ms() + WAIT_MS;

	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	while (mxd->active_sessions > left && now_ms() < deadline) {
		event_base_loop(mxd->base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	return mxd->active_sessions == left;
}

static bool
client_finish(struct client *c)
{
	return client_finish_leaving(c, 0);
}

/* ---- the table ---- */

struct step {
	const char	*send;			/* NULL: send nothing, only wait */
	const char	*expect[MAX_REPLIES];	/* prefix of each reply's first line, in order */
};

struct session_case {
	const char	*label;
	const char	*config;		/* extra config lines, NULL for the defaults */
	enum tier_role	 tier;
	struct step	 steps[MAX_STEPS];
	bool		 closes;		/* the session closes after the last step */
};

#define BANNER		{ NULL, { "220 " HOST " ESMTP" } }
#define EHLO		{ "EHLO client.example\r\n", { "250-" HOST } }
#define NOOP_OK		{ "NOOP\r\n", { "250 2.0.0" } }

static const struct session_case session_cases[] = {
	/* Greeting and HELO/EHLO. */
	{ "banner, EHLO, QUIT", NULL, TIER_PRIMARY, { BANNER, EHLO, { "QUIT\r\n", { "221 2.0.0" } } }, true },
	{ "HELO", NULL, TIER_PRIMARY, { BANNER, { "HELO client.example\r\n", { "250 " HOST } } }, false },
	{ "secondary tier greets like the primary", NULL, TIER_SECONDARY, { BANNER, EHLO }, false },
	{ "EHLO without a name: 501", NULL, TIER_PRIMARY, { BANNER, { "EHLO\r\n", { "501 5.5.4" } } }, false },
	{ "HELO with two words: 501", NULL, TIER_PRIMARY, { BANNER, { "HELO a b\r\n", { "501 5.5.4" } } }, false },
	{ "lower-case verbs", NULL, TIER_PRIMARY, { BANNER, { "ehlo client.example\r\n", { "250-" HOST } },
	    { "noop\r\n", { "250 2.0.0" } } }, false },
	{ "second EHLO is fine", NULL, TIER_PRIMARY, { BANNER, EHLO, EHLO }, false },

	/* Out of order: 503. */
	{ "MAIL before HELO: 503", NULL, TIER_PRIMARY, { BANNER, { "MAIL FROM:<a@example.org>\r\n", { "503 5.5.1" } } },
	    false },
	{ "RCPT before HELO: 503", NULL, TIER_PRIMARY, { BANNER, { "RCPT TO:<b@example.org>\r\n", { "503 5.5.1" } } },
	    false },
	{ "RCPT before MAIL: 503", NULL, TIER_PRIMARY, { BANNER, EHLO, { "RCPT TO:<b@example.org>\r\n",
	    { "503 5.5.1" } } }, false },
	{ "DATA before HELO: 503", NULL, TIER_PRIMARY, { BANNER, { "DATA\r\n", { "503 5.5.1" } } }, false },
	{ "DATA without MAIL or RCPT: 503", NULL, TIER_PRIMARY, { BANNER, EHLO, { "DATA\r\n", { "503 5.5.1" } } },
	    false },

	/* Local commands. */
	{ "NOOP before and after EHLO", NULL, TIER_PRIMARY, { BANNER, NOOP_OK, EHLO, NOOP_OK }, false },
	{ "RSET before and after EHLO", NULL, TIER_PRIMARY, { BANNER, { "RSET\r\n", { "250 2.0.0" } }, EHLO,
	    { "RSET\r\n", { "250 2.0.0" } } }, false },
	{ "VRFY: 252", NULL, TIER_PRIMARY, { BANNER, EHLO, { "VRFY postmaster\r\n", { "252 2.5.2" } } }, false },
	{ "HELP: 214", NULL, TIER_PRIMARY, { BANNER, { "HELP\r\n", { "214 " } } }, false },
	{ "not implemented: 502 each", NULL, TIER_PRIMARY, { BANNER, EHLO,
	    { "EXPN staff\r\n", { "502 5.5.1" } },
	    { "BDAT 0 LAST\r\n", { "502 5.5.1" } },
	    { "XCLIENT ADDR=192.0.2.1\r\n", { "502 5.5.1" } },
	    { "XFORWARD ADDR=192.0.2.1\r\n", { "502 5.5.1" } },
	    { "AUTH PLAIN AGFhAGI=\r\n", { "502 5.5.1" } },
	    { "STARTTLS\r\n", { "502 5.5.1" } },
	    { "ETRN example.org\r\n", { "502 5.5.1" } },
	    { "TURN\r\n", { "502 5.5.1" } },
	    NOOP_OK }, false },
	{ "BDAT: 502, its chunk is discarded, not executed", NULL, TIER_PRIMARY, { BANNER, EHLO,
	    { "BDAT 12 LAST\r\nRSET\r\nQUIT\r\n", { "502 5.5.1" } },
	    NOOP_OK }, false },
	{ "BDAT: unusable chunk size, 554 and close", NULL, TIER_PRIMARY, { BANNER, EHLO,
	    { "BDAT 99999999999999999999999 LAST\r\n", { "554 5.5.1" } } }, true },
	{ "BDAT: size beyond message_size_limit, 554 and close", NULL, TIER_PRIMARY, { BANNER, EHLO,
	    { "BDAT 999999999999\r\n", { "554 5.5.1" } } }, true },
	{ "unknown verb: 500", NULL, TIER_PRIMARY, { BANNER, { "FOO bar\r\n", { "500 5.5.2" } }, NOOP_OK }, false },
	{ "over-long verb: 500", NULL, TIER_PRIMARY, { BANNER, { "NOOPNOOPNOOPNOOPNOOP\r\n", { "500 5.5.2" } } }, false },
	{ "CR inside a command: 500", NULL, TIER_PRIMARY, { BANNER, { "NO\rOP\r\n", { "500 5.5.2" } }, NOOP_OK }, false },

	/* Non-SMTP clients: 521 and close. */
	{ "GET /: 521 and close", NULL, TIER_PRIMARY, { BANNER, { "GET / HTTP/1.1\r\n", { "521 5.7.0" } } }, true },
	{ "POST: 521 and close", NULL, TIER_PRIMARY, { BANNER, { "POST /x HTTP/1.0\r\n", { "521 5.7.0" } } }, true },
	{ "HEAD: 521 and close", NULL, TIER_PRIMARY, { BANNER, { "HEAD / HTTP/1.0\r\n", { "521 5.7.0" } } }, true },
	{ "PUT: 521 and close", NULL, TIER_PRIMARY, { BANNER, { "PUT / HTTP/1.0\r\n", { "521 5.7.0" } } }, true },
	{ "CONNECT: 521 and close", NULL, TIER_PRIMARY, { BANNER, { "CONNECT mx.example:25 HTTP/1.1\r\n",
	    { "521 5.7.0" } } }, true },
	{ "OPTIONS: 521 and close", NULL, TIER_PRIMARY, { BANNER, { "OPTIONS * HTTP/1.1\r\n", { "521 5.7.0" } } }, true },
	{ "USER (POP3): 521 and close", NULL, TIER_PRIMARY, { BANNER, { "USER root\r\n", { "521 5.7.0" } } }, true },
	{ "header line Host: 521 and close", NULL, TIER_PRIMARY, { BANNER, { "Host: example.org\r\n",
	    { "521 5.7.0" } } }, true },
	{ "header line with a 16-octet name: 521 and close", NULL, TIER_PRIMARY, { BANNER,
	    { "Accept-Language: en\r\n", { "521 5.7.0" } } }, true },
	{ "GET after EHLO: 521 and close", NULL, TIER_PRIMARY, { BANNER, EHLO, { "GET /\r\n", { "521 5.7.0" } } }, true },

	/* Pipelining after EHLO: every reply, in order. */
	{ "pipelined commands answered in order", NULL, TIER_PRIMARY, { BANNER, EHLO,
	    { "NOOP\r\nHELP\r\nVRFY x\r\nFOO\r\nRSET\r\nEXPN x\r\nNOOP\r\n",
	      { "250 2.0.0", "214 ", "252 2.5.2", "500 5.5.2", "250 2.0.0", "502 5.5.1", "250 2.0.0" } } }, false },
	{ "pipelined MAIL, RCPT, DATA with the backend down", NULL, TIER_PRIMARY, { BANNER, EHLO,
	    { "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n",
	      { "451 4.4.1", "503 5.5.1", "503 5.5.1" } }, { "NOOP\r\n", { "250 2.0.0" } } }, false },
	/* RFC 2920: DATA ends a group; what follows a refused DATA is never run. */
	{ "bytes after a refused DATA: dropped, never run", NULL, TIER_PRIMARY, { BANNER, EHLO,
	    { "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nNOOP\r\n",
	      { "451 4.4.1", "503 5.5.1", "503 5.5.1", "554 5.5.0 " HOST } } }, true },
	{ "text after a refused DATA, a moment later: dropped", NULL, TIER_PRIMARY, { BANNER, EHLO,
	    { "DATA\r\n", { "503 5.5.1" } }, { "Subject: x\r\n", { "554 5.5.0 " HOST } } }, true },

	{ "nothing runs after QUIT in a pipeline", NULL, TIER_PRIMARY, { BANNER, EHLO,
	    { "QUIT\r\nNOOP\r\nHELP\r\n", { "221 2.0.0" } } }, true },

	/* Command line length: 512 octets with CRLF. */
	{ "line of exactly 512 octets is executed", NULL, TIER_PRIMARY, { BANNER, { "NOOP "
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxx\r\n", { "250 2.0.0" } } }, false },
	{ "line of 513 octets: 500 5.5.2, never run", NULL, TIER_PRIMARY, { BANNER, { "QUIT "
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxx\r\n", { "500 5.5.2" } }, NOOP_OK }, false },

	/* Tiers and listings at the greeting. */
	{ "bait tier: 421 at the banner and close", NULL, TIER_BAIT, { { NULL, { "421 4.7.0 " HOST } } }, true },
	{ "block_networks: 554 at the banner and close", "block_networks = 127.0.0.0/8\n", TIER_PRIMARY,
	    { { NULL, { "554 5.7.1 " HOST } } }, true },

	/* MAIL. */
	{ "MAIL with SIZE over the limit: 552", NULL, TIER_PRIMARY, { BANNER, EHLO,
	    { "MAIL FROM:<a@example.org> SIZE=26214401\r\n", { "552 5.3.4" } } }, false },
	{ "MAIL with SIZE over a small limit: 552", "message_size_limit = 1k\n", TIER_PRIMARY, { BANNER, EHLO,
	    { "MAIL FROM:<a@example.org> SIZE=1025\r\n", { "552 5.3.4" } } }, false },
	{ "MAIL with the backend unreachable: 451 4.4.1, never 250", NULL, TIER_PRIMARY, { BANNER, EHLO,
	    { "MAIL FROM:<a@example.org>\r\n", { "451 4.4.1" } },
	    { "RCPT TO:<b@example.org>\r\n", { "503 5.5.1" } } }, false },
	{ "MAIL with SIZE at the limit goes to the backend: 451", NULL, TIER_PRIMARY, { BANNER, EHLO,
	    { "MAIL FROM:<a@example.org> SIZE=26214400 BODY=7BIT\r\n", { "451 4.4.1" } } }, false },
	{ "MAIL null sender goes to the backend: 451", NULL, TIER_PRIMARY, { BANNER, EHLO,
	    { "MAIL FROM:<>\r\n", { "451 4.4.1" } } }, false },
	{ "MAIL without FROM: 501", NULL, TIER_PRIMARY, { BANNER, EHLO, { "MAIL TO:<a@example.org>\r\n",
	    { "501 5.5.4" } } }, false },
	{ "MAIL path without brackets: 501 5.1.7", NULL, TIER_PRIMARY, { BANNER, EHLO,
	    { "MAIL FROM:a@example.org\r\n", { "501 5.1.7" } } }, false },
	{ "MAIL local part of 65: 501 5.1.7", NULL, TIER_PRIMARY, { BANNER, EHLO,
	    { "MAIL FROM:<aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.org>\r\n",
	      { "501 5.1.7" } } }, false },
	{ "MAIL unknown parameter: 555", NULL, TIER_PRIMARY, { BANNER, EHLO,
	    { "MAIL FROM:<a@example.org> RET=FULL\r\n", { "555 5.5.4" } } }, false },
	/* No backend has offered 8BITMIME (none is up), so the parameter parser refuses the value. */
	{ "MAIL BODY=8BITMIME not offered: 501, no transaction opened", NULL, TIER_PRIMARY, { BANNER, EHLO,
	    { "MAIL FROM:<a@example.org> BODY=8BITMIME\r\n", { "501 5.5.4 Bad MAIL parameter syntax\r\n" } },
	    { "RCPT TO:<b@example.org>\r\n", { "503 5.5.1 Error: need MAIL command\r\n" } } }, false },

	/* Pipelining before EHLO fails the session at MAIL: nothing reaches the backend. */
	{ "pipelining before EHLO: 250, then 550 per RCPT, 554 at DATA", NULL, TIER_PRIMARY, { BANNER,
	    { "HELO client.example\r\nMAIL FROM:<a@example.org>\r\n", { "250 " HOST, "250 2.1.0" } },
	    { "RCPT TO:<b@example.org>\r\n", { "550 5.5.1" } },
	    { "RCPT TO:<c@example.org>\r\n", { "550 5.5.1" } },
	    { "RCPT TO:<d@example.org> NOTIFY=NEVER\r\n", { "555 5.5.4" } },
	    { "RCPT TO:d@example.org\r\n", { "501 5.1.3" } },
	    { "MAIL FROM:<a@example.org>\r\n", { "503 5.5.1" } },
	    { "DATA\r\n", { "554 5.5.1" } },
	    { "RSET\r\n", { "250 2.0.0" } },
	    { "RCPT TO:<b@example.org>\r\n", { "503 5.5.1" } } }, false },
	{ "EHLO pipelined with the next command counts as pipelining", NULL, TIER_PRIMARY, { BANNER,
	    { "EHLO client.example\r\nNOOP\r\n", { "250-" HOST, "250 2.0.0" } },
	    { "MAIL FROM:<a@example.org>\r\n", { "250 2.1.0" } },
	    { "RCPT TO:<b@example.org>\r\n", { "550 5.5.1" } } }, false },

	/* allow_networks: relayed without checks, even when pipelining. */
	{ "allow_networks: pipelined MAIL still goes to the backend (451)", "allow_networks = 127.0.0.1/32\n",
	    TIER_PRIMARY, { BANNER, { "HELO client.example\r\nMAIL FROM:<a@example.org>\r\n", { "250 " HOST,
	    "451 4.4.1" } } }, false },

	/* Greet wait: the multi-line banner; talking before its last line is pregreet. */
	{ "greet wait: patient client is relayed (451 with the backend down)", "greet_wait = 200ms\n", TIER_PRIMARY,
	    { { NULL, { "220-" HOST } }, EHLO, { "MAIL FROM:<a@example.org>\r\n", { "451 4.4.1" } } }, false },
	{ "greet wait: pregreet client gets 250 then 550", "greet_wait = 200ms\n", TIER_PRIMARY,
	    { { "EHLO client.example\r\n", { "220-" HOST, "250-" HOST } },
	      { "MAIL FROM:<a@example.org>\r\n", { "250 2.1.0" } },
	      { "RCPT TO:<b@example.org>\r\n", { "550 5.5.1" } } }, false },

	/* Limits. */
	{ "max_errors: 421 and close", "max_errors = 3\n", TIER_PRIMARY, { BANNER,
	    { "FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n", { "500 5.5.2", "500 5.5.2", "500 5.5.2", "421 4.7.0 " HOST } } }, true },
	{ "command timeout: 421 4.4.2 and close", "command_timeout = 1s\n", TIER_PRIMARY, { BANNER,
	    { NULL, { "421 4.4.2 " HOST } } }, true },
};

static bool
has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void
run_session_case(const struct session_case *tc)
{
	struct client *c = calloc(1, sizeof(*c));
	char reply[8192];

	assert_non_null(c);
	if (tc->config) {
		config_unref(mxd->config);
		mxd->config = make_config(tc->config);
	}
	client_connect(c, tc->tier);
	for (size_t s = 0; s < MAX_STEPS && (tc->steps[s].send || tc->steps[s].expect[0]); s++) {
		const struct step *st = &tc->steps[s];

		if (st->send)
			client_send(c, st->send, strlen(st->send));
		for (size_t r = 0; r < MAX_REPLIES && st->expect[r]; r++) {
			if (!wait_reply(c, reply, sizeof(reply), WAIT_MS)) {
				EXPECT(tc->label, 0, "step %zu: no reply %zu (expected \"%s\"; %s, %zu bytes pending: \"%s\")",
				    s + 1, r + 1, st->expect[r], c->eof ? "connection closed" : "timed out", c->len,
				    unit_escape(c->buf, c->len));
				goto done;
			}
			EXPECT(tc->label, has_prefix(reply, st->expect[r]), "step %zu (%s) reply %zu: \"%s\", expected \"%s...\"",
			    s + 1, st->send ? unit_str(st->send) : "wait", r + 1, unit_str(reply), st->expect[r]);
		}
	}
	if (tc->closes) {
		int64_t deadline = now_ms() + WAIT_MS;

		while (!c->eof && now_ms() < deadline)
			pump(c);
		EXPECT(tc->label, c->eof, "connection not closed");
		EXPECT(tc->label, c->len == 0, "more after the last reply: \"%s\"", unit_escape(c->buf, c->len));
	} else {
		int64_t until = now_ms() + QUIET_MS;

		while (now_ms() < until)
			pump(c);
		EXPECT(tc->label, !c->eof, "connection closed");
		if (take_reply(c, reply, sizeof(reply)))
			EXPECT(tc->label, 0, "unexpected reply \"%s\"", unit_str(reply));
	}
done:
	EXPECT(tc->label, client_finish(c), "%zu session(s) not freed after the client left", mxd->active_sessions);
	if (tc->config) {
		config_unref(mxd->config);
		mxd->config = make_config(NULL);
	}
	free(c);
}

static void
test_session_table(void **state)
{
	for (size_t i = 0; i < sizeof(session_cases) / sizeof(session_cases[0]); i++)
		run_session_case(&session_cases[i]);
	EXPECT_ALL_PASSED();
}

/* The EHLO reply, line by line. */
static void
test_session_ehlo_keywords(void **state)
{
	static const char *const present[] = { "250-" HOST "\r\n", "250-PIPELINING\r\n", "250-SIZE 26214400\r\n",
	    "250 ENHANCEDSTATUSCODES\r\n" };
	static const char *const absent[] = { "CHUNKING", "XCLIENT", "XFORWARD", "AUTH", "STARTTLS", "8BITMIME",
	    "SMTPUTF8", "DSN" };
	struct client *c = calloc(1, sizeof(*c));
	char reply[8192];

	assert_non_null(c);
	client_connect(c, TIER_PRIMARY);
	assert_true(wait_reply(c, reply, sizeof(reply), WAIT_MS));
	client_send(c, "EHLO client.example\r\n", strlen("EHLO client.example\r\n"));
	assert_true(wait_reply(c, reply, sizeof(reply), WAIT_MS));
	for (size_t i = 0; i < sizeof(present) / sizeof(present[0]); i++)
		EXPECT(present[i], strstr(reply, present[i]) != NULL, "missing from \"%s\"", unit_str(reply));
	EXPECT("ENHANCEDSTATUSCODES is the last line", strlen(reply) >= 25 &&
	    strcmp(reply + strlen(reply) - 25, "250 ENHANCEDSTATUSCODES\r\n") == 0, "\"%s\"", unit_str(reply));
	for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
		EXPECT(absent[i], strstr(reply, absent[i]) == NULL, "offered in \"%s\"", unit_str(reply));
	EXPECT("EHLO: sessions freed", client_finish(c), "session not freed");
	free(c);
	EXPECT_ALL_PASSED();
}

/* A long line arriving in pieces, the CRLF much later: one 500, the next command still works. */
static void
test_session_long_line_in_pieces(void **state)
{
	struct client *c = calloc(1, sizeof(*c));
	char reply[8192], chunk[300];
	int replies_500 = 0;

	assert_non_null(c);
	client_connect(c, TIER_PRIMARY);
	assert_true(wait_reply(c, reply, sizeof(reply), WAIT_MS));
	memset(chunk, 'x', sizeof(chunk));
	memcpy(chunk, "QUIT ", 5);
	client_send(c, chunk, sizeof(chunk));
	for (int i = 0; i < 10; i++) {
		memset(chunk, 'y', sizeof(chunk));
		client_send(c, chunk, sizeof(chunk));
		for (int k = 0; k < 5; k++)
			pump(c);
	}
	client_send(c, "\r\nNOOP\r\n", 8);
	while (wait_reply(c, reply, sizeof(reply), 300)) {
		if (has_prefix(reply, "500 5.5.2"))
			replies_500++;
		else
			break;
	}
	EXPECT("long line in pieces", replies_500 == 1, "%d replies 500 for one long line", replies_500);
	EXPECT("long line in pieces", has_prefix(reply, "250 2.0.0"), "then \"%s\", expected 250", unit_str(reply));
	EXPECT("long line in pieces", !c->eof, "closed: the tail of the line was run as QUIT?");
	EXPECT("long line in pieces", client_finish(c), "session not freed");
	free(c);
	EXPECT_ALL_PASSED();
}

/* max_sessions_per_client: the second session from the same address is refused. */
static void
test_session_per_client_limit(void **state)
{
	struct client *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	char reply[8192];

	assert_non_null(a);
	assert_non_null(b);
	config_unref(mxd->config);
	mxd->config = make_config("max_sessions_per_client = 1\n");
	client_connect(a, TIER_PRIMARY);
	client_connect(b, TIER_PRIMARY);
	EXPECT("first session greeted", wait_reply(a, reply, sizeof(reply), WAIT_MS) && has_prefix(reply, "220 "),
	    "\"%s\"", unit_str(reply));
	EXPECT("second session refused", wait_reply(b, reply, sizeof(reply), WAIT_MS) &&
	    has_prefix(reply, "421 4.7.0 " HOST " Too many sessions from your address"), "\"%s\"", unit_str(reply));
	EXPECT("refused session freed", client_finish_leaving(b, 1), "%zu left", mxd->active_sessions);
	EXPECT("sessions freed", client_finish(a), "%zu left", mxd->active_sessions);

	/* The slot is free again once both left. */
	client_connect(a, TIER_PRIMARY);
	EXPECT("slot released", wait_reply(a, reply, sizeof(reply), WAIT_MS) && has_prefix(reply, "220 "), "\"%s\"",
	    unit_str(reply));
	EXPECT("sessions freed", client_finish(a), "%zu left", mxd->active_sessions);
	config_unref(mxd->config);
	mxd->config = make_config(NULL);
	free(a);
	free(b);
	EXPECT_ALL_PASSED();
}

/* max_recipients: the 101st RCPT of a transaction gets 452 4.5.3 (reject path: no backend needed). */
static void
test_session_max_recipients(void **state)
{
	struct client *c = calloc(1, sizeof(*c));
	char reply[8192], *burst = malloc(101 * 32 + 1);
	size_t used = 0;
	int refused = 0, too_many = 0, other = 0;

	assert_non_null(c);
	assert_non_null(burst);
	client_connect(c, TIER_PRIMARY);
	assert_true(wait_reply(c, reply, sizeof(reply), WAIT_MS));
	/* HELO and MAIL in one write: pipelining before EHLO, so MAIL is taken locally. */
	{
		static const char pipelined[] = "HELO client.example\r\nMAIL FROM:<a@example.org>\r\n";

		client_send(c, pipelined, sizeof(pipelined) - 1);
	}
	assert_true(wait_reply(c, reply, sizeof(reply), WAIT_MS));
	assert_true(wait_reply(c, reply, sizeof(reply), WAIT_MS));
	EXPECT("max_recipients: MAIL taken", has_prefix(reply, "250 2.1.0"), "\"%s\"", unit_str(reply));
	for (int i = 0; i < 101; i++)
		used += (size_t)sprintf(burst + used, "RCPT TO:<r%d@example.org>\r\n", i);
	client_send(c, burst, used);
	for (int i = 0; i < 101; i++) {
		if (!wait_reply(c, reply, sizeof(reply), WAIT_MS))
			break;
		if (has_prefix(reply, "550 5.5.1"))
			refused++;
		else if (has_prefix(reply, "452 4.5.3"))
			too_many++;
		else if (other++ == 0)
			EXPECT("max_recipients", 0, "RCPT %d: unexpected \"%s\"", i + 1, unit_str(reply));
	}
	EXPECT("max_recipients", refused == 100 && too_many == 1 && other == 0,
	    "%d refused, %d too many, %d other (expected 100, 1, 0)", refused, too_many, other);
	EXPECT("max_recipients: session freed", client_finish(c), "session not freed");
	free(burst);
	free(c);
	EXPECT_ALL_PASSED();
}

/* ---- STARTTLS after a backlog of replies ---- */

/* write_test_certificate - a self-signed ECDSA certificate and its key, made with OpenSSL itself. */
static void
write_test_certificate(const char *cert_path, const char *key_path)
{
	EVP_PKEY *pkey = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	FILE *f;

	assert_non_null(pkey);
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, pkey);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)HOST, -1, -1, 0);
	X509_set_issuer_name(x, name);
	assert_true(X509_sign(x, pkey, EVP_sha256()) > 0);
	assert_non_null(f = fopen(cert_path, "w"));
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
	assert_non_null(f = fopen(key_path, "w"));
	assert_int_equal(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(pkey);
}

/* tls_io_wait - run the loop once for a TLS call that wants more; false past the deadline. */
static bool
tls_io_wait(int64_t deadline)
{
	if (now_ms() >= deadline)
		return false;
	event_base_loop(mxd->base, EVLOOP_NONBLOCK);
	usleep(500);
	return true;
}

/*
 * A client pipelines many NOOPs and STARTTLS and reads nothing for a
 * while: the session's writes fall short (small send buffer), so the 220
 * leaves through libevent's write callback, not the one-pass flush. Every
 * plaintext reply must come before the 220, nothing after it, and the
 * handshake must then work on the same socket.
 */
static void
test_session_starttls_after_backlog(void **state)
{
	enum { NOOPS = 3000 };
	char dir[] = "/tmp/mxtier-unit-tls-XXXXXX", cert[64], key[64], extra[256], reply[8192], tlsbuf[4096];
	struct client *c = calloc(1, sizeof(*c));
	char *burst = malloc(NOOPS * 6 + 16);
	size_t used = 0, have = 0;
	int noop_ok = 0, r;
	SSL_CTX *ctx;
	SSL *ssl;
	int64_t deadline;

	assert_non_null(c);
	assert_non_null(burst);
	assert_non_null(mkdtemp(dir));
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	write_test_certificate(cert, key);
	snprintf(extra, sizeof(extra), "tls_cert_file = %s\ntls_key_file = %s\n", cert, key);
	config_unref(mxd->config);
	mxd->config = make_config(extra);

	client_connect_small_buffer(c, 4096);
	assert_true(wait_reply(c, reply, sizeof(reply), WAIT_MS));
	client_send(c, "EHLO client.example\r\n", 21);
	assert_true(wait_reply(c, reply, sizeof(reply), WAIT_MS));
	EXPECT("starttls backlog", strstr(reply, "250-STARTTLS\r\n") != NULL, "not offered: \"%s\"", unit_str(reply));
	for (int i = 0; i < NOOPS; i++)
		used += (size_t)sprintf(burst + used, "NOOP\r\n");
	used += (size_t)sprintf(burst + used, "STARTTLS\r\n");
	client_send(c, burst, used);
	/* Let the session run with nobody reading: its output backs up. */
	for (int i = 0; i < 100; i++) {
		event_base_loop(mxd->base, EVLOOP_NONBLOCK);
		usleep(200);
	}
	for (int i = 0; i < NOOPS; i++) {
		if (!wait_reply(c, reply, sizeof(reply), WAIT_MS))
			break;
		if (has_prefix(reply, "250 2.0.0 Ok\r\n"))
			noop_ok++;
	}
	EXPECT("starttls backlog", noop_ok == NOOPS, "%d of %d NOOP replies before the 220", noop_ok, (int)NOOPS);
	EXPECT("starttls backlog", wait_reply(c, reply, sizeof(reply), WAIT_MS) &&
	    strcmp(reply, "220 2.0.0 Ready to start TLS\r\n") == 0, "\"%s\", expected the 220", unit_str(reply));
	EXPECT("starttls backlog", c->len == 0, "plaintext after the 220: \"%s\"", unit_escape(c->buf, c->len));

	ctx = SSL_CTX_new(TLS_client_method());
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, c->fd);
	deadline = now_ms() + WAIT_MS;
	while ((r = SSL_connect(ssl)) != 1) {
		int err = SSL_get_error(ssl, r);

		if ((err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) || !tls_io_wait(deadline))
			break;
	}
	EXPECT("starttls backlog", r == 1, "handshake failed");
	if (r == 1) {
		EXPECT("starttls backlog", SSL_write(ssl, "EHLO client.example\r\n", 21) == 21, "SSL_write");
		deadline = now_ms() + WAIT_MS;
		tlsbuf[0] = '\0';
		while (strstr(tlsbuf, "\r\n250 ") == NULL && have < sizeof(tlsbuf) - 1) {
			r = SSL_read(ssl, tlsbuf + have, (int)(sizeof(tlsbuf) - 1 - have));
			if (r > 0) {
				have += (size_t)r;
				tlsbuf[have] = '\0';
			} else if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ || !tls_io_wait(deadline)) {
				break;
			}
		}
		tlsbuf[have] = '\0';
		EXPECT("starttls backlog", has_prefix(tlsbuf, "250-" HOST "\r\n") && strstr(tlsbuf, "\r\n250 ") != NULL,
		    "EHLO inside TLS: \"%s\"", unit_str(tlsbuf));
		EXPECT("starttls backlog", strstr(tlsbuf, "STARTTLS") == NULL, "STARTTLS offered again inside TLS");
	}
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	EXPECT("starttls backlog", client_finish(c), "session not freed");
	unlink(cert);
	unlink(key);
	rmdir(dir);
	config_unref(mxd->config);
	mxd->config = make_config(NULL);
	free(burst);
	free(c);
	EXPECT_ALL_PASSED();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_session_table),
		cmocka_unit_test(test_session_ehlo_keywords),
		cmocka_unit_test(test_session_long_line_in_pieces),
		cmocka_unit_test(test_session_per_client_limit),
		cmocka_unit_test(test_session_max_recipients),
		cmocka_unit_test(test_session_starttls_after_backlog),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
