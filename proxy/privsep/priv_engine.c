/*
 * priv_engine.c - the SMTP engine's side of privilege separation: after
 * the fork it sheds the conninfo and secrets, drops to `user` with no
 * capability (and checks that it did), opens its end of the channel, and
 * asks the parent for the sockets it may not make itself.
 */
#include "priv_internal.h"

#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "sockets.h"

#define PRIV_LISTENER_WAIT_MS	5000	/* a reload binding a new tier address */
#define PRIV_TRANSPARENT_WAIT_MS 500	/* a relay: mail flows from the appliance's address instead */
#define PRIV_STACK_SCRUB	(32 * 1024)

extern char **environ;

static struct {
	uint32_t	next_fd_id;
} engine;

/* ---- after the fork ---- */

/* priv_scrub_stack - clear stack the config parser used: the conninfo must not linger in the engine. */
void __attribute__((noinline))
priv_scrub_stack(void)
{
	char area[PRIV_STACK_SCRUB];

	explicit_bzero(area, sizeof(area));
	__asm__ __volatile__("" : : "r"(area) : "memory");
}

/* priv_scrub_environment - PGPASSWORD and friends: zero their bytes where /proc/PID/environ reads them. */
void
priv_scrub_environment(void)
{
	static const char *const secret[] = { "PGPASSWORD=", "PGPASSFILE=", "PGSERVICEFILE=", "PGSERVICE=" };

	for (char **e = environ; e && *e; e++)
		for (size_t i = 0; i < sizeof(secret) / sizeof(secret[0]); i++)
			if (strncmp(*e, secret[i], strlen(secret[i])) == 0)
				explicit_bzero(*e + strlen(secret[i]), strlen(*e + strlen(secret[i])));
}

/* status_field - a number from /proc/self/status ("CapEff:" hex, "NoNewPrivs:" decimal); -1 if absent. */
static long long
status_field(const char *name, int base)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long long value = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, name, strlen(name)) == 0)
			value = strtoll(line + strlen(name), NULL, base);
	fclose(f);
	return value;
}

void
priv_drop(void)
{
	if (priv.role != PRIV_ROLE_ENGINE)
		return;
	priv_drop_to_user("SMTP engine");
}

/* priv_drop_to_user - this process becomes priv.uid/gid for good, no capability; aborts if it cannot. */
void
priv_drop_to_user(const char *who)
{
	if (setgroups(0, NULL) == -1 || setresgid(priv.gid, priv.gid, priv.gid) == -1 ||
	    setresuid(priv.uid, priv.uid, priv.uid) == -1)
		fatalx("privsep: cannot become user %s: %s", priv.user, strerror(errno));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		fatalx("privsep: cannot set no_new_privs: %s", strerror(errno));
	/* Changing credentials cleared the parent-death signal: set it now, then check the parent is still there. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) == -1)
		fatalx("privsep: cannot set the parent-death signal: %s", strerror(errno));
	if (getppid() != priv.parent_pid)
		fatalx("privsep: the privileged process is gone");
#if defined(__SANITIZE_ADDRESS__)
	/* LeakSanitizer's tracer must attach to us; only sanitizer builds stay dumpable. */
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
	/* Verify, do not trust: no way back to root, no capability left. */
	if (setuid(0) != -1 || seteuid(0) != -1)
		fatalx("privsep: could regain root after dropping it; refusing to run");
	if (status_field("CapEff:", 16) != 0 || status_field("CapPrm:", 16) != 0 ||
	    status_field("NoNewPrivs:", 10) != 1)
		fatalx("privsep: capabilities left after dropping to %s; refusing to run", priv.user);
	priv.dropped = true;
	log_info("privsep: %s runs as %s (uid %u), no capabilities", who, priv.user, (unsigned)priv.uid);
}

void
priv_engine_begin(struct config *c, pid_t parent, int chan_fd, int fd_fd)
{
	priv.role = PRIV_ROLE_ENGINE;
	priv.parent_pid = parent;
	priv.channel_fd = chan_fd;
	priv.fd_sock = fd_fd;
	prctl(PR_SET_NAME, "mxtierd [smtp]", 0, 0, 0);
	/* The engine never holds the conninfo: the parent connects; nor the dashboard's, the HTTP process reads. */
	priv_shed_conninfo(c);
	if (c->dashboard_database[0] != '\0') {
		explicit_bzero(c->dashboard_database, strlen(c->dashboard_database));
		free(c->dashboard_database);
		if ((c->dashboard_database = strdup(PRIV_DATABASE_REDACTED)) == NULL)
			abort();
	}
}

void
priv_shed_conninfo(struct config *c)
{
	if (c->database[0] != '\0') {
		explicit_bzero(c->database, strlen(c->database));
		free(c->database);
		if ((c->database = strdup(PRIV_DATABASE_REDACTED)) == NULL)
			abort();
	}
	priv_scrub_environment();
}

/* ---- the channel end ---- */

/*
 * engine_channel_closed - the privileged side is gone (in the one process:
 * its end). PR_SET_PDEATHSIG brings a SIGTERM too; do not count on its timing.
 */
static void
engine_channel_closed(struct priv_channel *ch)
{
	log_warn("privsep: the privileged process closed the channel: stopping");
	kill(getpid(), SIGTERM);
}

int
priv_engine_start(void)
{
	int sv[2];

	if (priv.role == PRIV_ROLE_ENGINE) {
		priv.engine_end = priv_channel_new(priv.channel_fd, TO_ENGINE, "privileged process", engine_channel_closed);
		return priv.engine_end ? 0 : -1;
	}
	/* One process: both ends here; the privileged services start in priv_local_start. */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1)
		return -1;
	priv.engine_end = priv_channel_new(sv[0], TO_ENGINE, "privileged side", engine_channel_closed);
	priv.priv_end = priv_channel_new(sv[1], TO_PRIVILEGED, "engine side", engine_channel_closed);
	return priv.engine_end && priv.priv_end ? 0 : -1;
}

void
priv_engine_stop(void)
{
	/* Whatever is still queued for the parent goes out now, or not at all. */
	priv_channel_drain(priv.engine_end, 1000);
	priv_channel_free(priv.engine_end);
	priv.engine_end = NULL;
	if (priv.fd_sock >= 0) {
		close(priv.fd_sock);
		priv.fd_sock = -1;
	}
}

/* ---- sockets that need privilege: asked of the parent ---- */

/*
 * request_socket - ask the parent for a socket and wait for it, at most
 * wait_ms. The engine's loop stands still meanwhile, which is why only
 * rare requests (a reload's new listener, a relay with backend_source =
 * client) come here; an answer that arrives late is recognised by its id
 * and closed.
 */
static int
request_socket(enum priv_msg_type type, const struct netaddr *addr, uint16_t port, bool transparent, int wait_ms)
{
	struct {
		struct priv_hdr		hdr;
		struct priv_fd_request	req;
	} out;
	int64_t deadline = now_ms() + wait_ms;

	memset(&out, 0, sizeof(out));
	out.hdr.type = type;
	out.hdr.len = sizeof(out.req);
	out.req.id = ++engine.next_fd_id;
	out.req.addr = *addr;
	out.req.port = port;
	out.req.transparent = transparent;
	if (priv_sendmsg(priv.fd_sock, &out, sizeof(out), -1) != 0) {
		errno = EAGAIN;
		return -1;
	}
	for (;;) {
		char buf[sizeof(struct priv_hdr) + sizeof(struct priv_fd_reply)];
		struct pollfd pfd = { .fd = priv.fd_sock, .events = POLLIN };
		struct priv_hdr hdr;
		struct priv_fd_reply reply;
		int64_t left = deadline - now_ms();
		ssize_t n;
		int fd, flags;

		if (left <= 0 || poll(&pfd, 1, (int)left) == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		n = priv_recv_one(priv.fd_sock, buf, sizeof(buf), &fd, &flags);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			errno = EPIPE;
			return -1;
		}
		memcpy(&hdr, buf, sizeof(hdr));
		if ((size_t)n != sizeof(buf) || hdr.type != PRIV_MSG_FD_REPLY || hdr.len != sizeof(reply)) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		memcpy(&reply, buf + sizeof(hdr), sizeof(reply));
		if (reply.id != out.req.id) {
			if (fd >= 0)
				close(fd);	/* the answer to a request that timed out */
			continue;
		}
		if (fd < 0) {
			errno = reply.error ? reply.error : EPROTO;
			return -1;
		}
		return fd;
	}
}

int
priv_listener_socket(const struct netaddr *addr, uint16_t port, bool transparent)
{
	if (priv.role != PRIV_ROLE_ENGINE || !priv.dropped)
		return socket_listen_tcp(addr, port, transparent);
	return request_socket(PRIV_MSG_FD_LISTENER, addr, port, transparent, PRIV_LISTENER_WAIT_MS);
}

int
priv_transparent_socket(const struct netaddr *client)
{
	static int64_t quiet_until;
	int fd;

	if (priv.role != PRIV_ROLE_ENGINE || !priv.dropped)
		return socket_transparent_client(client);
	/*
	 * The engine's loop stands still while it waits: after a request timed
	 * out, the next second's relays fail at once (451) instead of each
	 * waiting out its own timeout behind a busy parent.
	 */
	if (now_ms() < quiet_until) {
		errno = ETIMEDOUT;
		return -1;
	}
	fd = request_socket(PRIV_MSG_FD_TRANSPARENT, client, 0, true, PRIV_TRANSPARENT_WAIT_MS);
	if (fd == -1 && errno == ETIMEDOUT)
		quiet_until = now_ms() + 1000;
	return fd;
}
