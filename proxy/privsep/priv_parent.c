/*
 * priv_parent.c - the privileged side: in a split, the parent's own loop
 * ("mxtierd [priv]"): its signals, the config reload it reads as root,
 * the engine's exit, and the sockets it makes for the engine when the
 * config calls for them. It serves the privileged services (the kernel
 * set writer, the database connections), which the one process runs too
 * when there is no split. It never reads a byte from the internet.
 */
#include "priv_internal.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "db.h"
#include "kernel.h"
#include "sockets.h"
#include "log.h"
#include "service.h"

#define PRIV_STOP_FLUSH_MS	2000	/* the parent's last database writes after the engine stopped */
#define PRIV_STATS_EVERY_MS	1000	/* the privileged side's counters to the engine (status, /metrics) */

static struct {
	pid_t		 engine_pid;
	struct event	*fd_ev;
	struct event	*signals[5];
	struct event	*stop_timer;
	struct event	*reload_timer;		/* an engine's request that came within a second of the last */
	bool		 stop_forwarded;
	bool		 engine_gone;
	int		 exit_code;
	int64_t		 stop_started_ms;
	int64_t		 last_reload_ms;
} parent;

/* ---- the privileged services, in the parent or in the one process ---- */

static struct event *stats_timer;

/* stats_timer_cb - the privileged side's counters to the engine, which prints them in status. */
static void
stats_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct priv_parent_stats ps;
	uint64_t ch[4];

	memset(&ps, 0, sizeof(ps));
	kernel_priv_stats(&ps);
	http_parent_counters(&ps);
	priv_channel_counters(ch);
	ps.from_engine = ch[0];
	ps.from_engine_refused = ch[1];
	ps.to_engine = ch[2];
	ps.to_engine_dropped = ch[3];
	priv_to_engine(PRIV_MSG_PARENT_STATS, &ps, sizeof(ps));
}

/* privileged_services_start - what the privileged side serves, in the parent or in the one process. */
static void
privileged_services_start(const struct config *c)
{
	struct timeval tv = { PRIV_STATS_EVERY_MS / 1000, (PRIV_STATS_EVERY_MS % 1000) * 1000 };

	kernel_priv_start(c);
	dbstore_start(c);
	http_parent_start();
	if ((stats_timer = event_new(mxd->base, -1, EV_PERSIST, stats_timer_cb, NULL)) == NULL)
		fatalx("privsep: out of memory");
	evtimer_add(stats_timer, &tv);
	stats_timer_cb(-1, 0, NULL);
}

static void
privileged_services_stop(void)
{
	if (stats_timer) {
		event_free(stats_timer);
		stats_timer = NULL;
	}
	http_parent_stop();
	dbstore_stop();
	kernel_priv_stop();
}

int
priv_local_start(void)
{
	if (priv.role != PRIV_ROLE_SINGLE)
		return 0;
	privileged_services_start(mxd->config);
	return 0;
}

void
priv_local_reconfigure(const struct config *c)
{
	if (priv.role != PRIV_ROLE_SINGLE)
		return;
	kernel_priv_reconfigure(c);
	dbstore_reconfigure(c);
}

void
priv_local_stop(void)
{
	if (priv.role != PRIV_ROLE_SINGLE)
		return;
	privileged_services_stop();
	priv_channel_free(priv.priv_end);
	priv.priv_end = NULL;
}

/* ---- sockets that need privilege: made here ---- */

/* fd_request_allowed - only the sockets the current config calls for; errno-style answer. */
static int
fd_request_allowed(enum priv_msg_type type, const struct priv_fd_request *req)
{
	const struct config *c = mxd->config;

	if (req->addr.family != AF_INET && req->addr.family != AF_INET6)
		return EAFNOSUPPORT;
	if (type == PRIV_MSG_FD_LISTENER) {
		if (config_tier_of(c, &req->addr) < 0 || req->port != (uint32_t)c->listen_port ||
		    req->transparent != (c->transparent ? 1u : 0u))
			return EPERM;
		return 0;
	}
	if (c->backend_source != BACKEND_FROM_CLIENT || req->addr.family != c->backend_addr.family ||
	    kernel_priv_excluded(&req->addr, req->addr.family == AF_INET ? 32 : 128))
		return EPERM;
	return 0;
}

static void
fd_request_cb(evutil_socket_t sock, short what, void *arg)
{
	for (int i = 0; i < PRIV_READ_BURST; i++) {
		char buf[sizeof(struct priv_hdr) + sizeof(struct priv_fd_request) + 1];
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };	/* no room for descriptors: the engine passes none */
		struct {
			struct priv_hdr		hdr;
			struct priv_fd_reply	reply;
		} out;
		struct priv_hdr hdr = { .type = PRIV_MSG_NONE };
		struct priv_fd_request req;
		ssize_t n = recvmsg(sock, &msg, MSG_DONTWAIT);
		int fd = -1;

		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		if (n <= 0) {
			event_del(parent.fd_ev);
			return;
		}
		if ((size_t)n >= sizeof(hdr))
			memcpy(&hdr, buf, sizeof(hdr));
		if ((size_t)n != sizeof(hdr) + sizeof(req) || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
		    (hdr.type != PRIV_MSG_FD_LISTENER && hdr.type != PRIV_MSG_FD_TRANSPARENT) || hdr.len != sizeof(req)) {
			if (priv.priv_end)
				priv.priv_end->refused++;
			log_warn("privsep: refused a socket request from the engine (malformed)");
			continue;
		}
		memcpy(&req, buf + sizeof(hdr), sizeof(req));
		memset(&out, 0, sizeof(out));
		out.hdr.type = PRIV_MSG_FD_REPLY;
		out.hdr.len = sizeof(out.reply);
		out.reply.id = req.id;
		out.reply.error = fd_request_allowed(hdr.type, &req);
		if (out.reply.error == 0) {
			fd = hdr.type == PRIV_MSG_FD_LISTENER ?
			    socket_listen_tcp(&req.addr, (uint16_t)req.port, req.transparent != 0) :
			    socket_transparent_client(&req.addr);
			if (fd == -1)
				out.reply.error = errno ? errno : EIO;
		} else {
			char text[NETADDR_STRLEN];

			log_warn("privsep: refused a %s socket for %s port %u: not in the configuration",
			    priv_msg_name(hdr.type), netaddr_format(&req.addr, text, sizeof(text)), req.port);
		}
		priv_sendmsg(sock, &out, sizeof(out), fd);
		if (fd >= 0)
			close(fd);
	}
}

/* ---- the config, read as root ---- */

/* read_config_text - the file's bytes, as config_load reads them; NULL (err set) if unreadable. */
static char *
read_config_text(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *text;
	size_t got = 0;

	if (fd == -1 || fstat(fd, &st) == -1 || st.st_size > PRIV_BLOB_CONFIG_MAX) {
		snprintf(err, errlen, "%s: %s", path, fd == -1 ? strerror(errno) : "unreadable or larger than 1 MiB");
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if ((text = malloc((size_t)st.st_size + 1)) == NULL)
		abort();
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, text + got, (size_t)st.st_size - got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	text[got] = '\0';
	if (strlen(text) != got) {
		snprintf(err, errlen, "%s: contains a NUL byte", path);
		free(text);
		return NULL;
	}
	return text;
}

/*
 * priv_config_load - config_load, with the file's bytes cleared after
 * parsing: the engine is forked from this process, and the conninfo must
 * not outlive the parse in freed heap it inherits.
 */
struct config *
priv_config_load(const char *path, char *err, size_t errlen)
{
	char *text = read_config_text(path, err, errlen);
	struct config *c;

	if (text == NULL)
		return NULL;
	c = config_load_string(path, text, err, errlen);
	explicit_bzero(text, strlen(text));
	free(text);
	return c;
}

char *
priv_redact_database(const char *text)
{
	size_t cap = strlen(text) + sizeof(PRIV_DATABASE_REDACTED) * 4 + 64, o = 0;
	char *out = malloc(cap);
	const char *p = text;

	if (out == NULL)
		abort();
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);
		const char *k = p, *key = NULL;
		bool redact = false;

		/* The same reading as config_load_string: key, spaces, '='; '#' starts a comment. */
		while (k < p + len && (*k == ' ' || *k == '\t'))
			k++;
		/* The writer's conninfo, and the dashboard's: the engine uses neither. */
		if ((size_t)(p + len - k) > 8 && strncmp(k, "database", 8) == 0)
			key = "database";
		else if ((size_t)(p + len - k) > 18 && strncmp(k, "dashboard_database", 18) == 0)
			key = "dashboard_database";
		if (key) {
			const char *e = k + strlen(key);

			while (e < p + len && (*e == ' ' || *e == '\t'))
				e++;
			redact = e < p + len && *e == '=';
		}
		if (redact) {
			if (o + sizeof(PRIV_DATABASE_REDACTED) + 32 > cap) {
				cap = cap * 2 + sizeof(PRIV_DATABASE_REDACTED) + 32;
				if ((out = realloc(out, cap)) == NULL)
					abort();
			}
			o += (size_t)snprintf(out + o, cap - o, "%s = %s\n", key, PRIV_DATABASE_REDACTED);
		} else {
			if (o + len + 1 > cap) {
				cap = cap * 2 + len + 1;
				if ((out = realloc(out, cap)) == NULL)
					abort();
			}
			memcpy(out + o, p, len);
			o += len;
		}
		p += len;
	}
	out[o] = '\0';
	return out;
}

/* ---- the parent's loop ---- */

/*
 * refusal_to_engine - the engine tells whoever asked it (mxtierctl tier
 * set) why: the loader's "FILE:LINE: key: problem". A problem that may
 * quote the database line (a URI without '=' is echoed whole) stays in the
 * parent's log: the engine never holds the conninfo.
 */
static void
refusal_to_engine(const char *err)
{
	char text[PRIV_REFUSAL_MAX];

	if (strcasestr(err, "database") || strstr(err, "://") || strcasestr(err, "password")) {
		const char *colon = strchr(err, ':');

		colon = colon ? strchr(colon + 1, ':') : NULL;
		if (colon)
			snprintf(text, sizeof(text), "%.*s: see the log of the privileged process", (int)(colon - err), err);
		else
			snprintf(text, sizeof(text), "see the log of the privileged process");
	} else {
		snprintf(text, sizeof(text), "%s", err);
	}
	priv_to_engine(PRIV_MSG_RELOAD_REFUSED, text, strlen(text));
}

/*
 * parent_reload - SIGHUP: read and check the file here (root reads it),
 * apply the privileged parts, then hand the engine the text with the
 * database value replaced; the engine applies the rest as it always did.
 */
static void
parent_reload(void)
{
	char err[1024];
	char *text = read_config_text(mxd->config->path, err, sizeof(err)), *redacted;
	struct config *next = text ? config_load_string(mxd->config->path, text, err, sizeof(err)) : NULL;

	parent.last_reload_ms = now_ms();
	/* READY=1 follows from the engine once it has applied the text, or below on a refusal. */
	service_notify("RELOADING=1");
	if (next == NULL) {
		if (text) {
			explicit_bzero(text, strlen(text));
			free(text);
		}
		log_warn("reload refused: %s (keeping the running configuration)", err);
		refusal_to_engine(err);
		service_notify("READY=1");
		return;
	}
	if (strcmp(next->user, mxd->config->user) != 0)
		log_warn("privsep: user changed to \"%s\": takes effect at the next start", next->user);
	kernel_priv_reconfigure(next);
	dbstore_reconfigure(next);
	config_unref(mxd->config);
	mxd->config = next;
	redacted = priv_redact_database(text);
	explicit_bzero(text, strlen(text));
	free(text);
	if (priv_blob_to_engine(PRIV_MSG_CONFIG, redacted, strlen(redacted)) == -1) {
		log_warn("privsep: could not pass the new configuration to the engine");
		service_notify("READY=1");
	}
	free(redacted);
}

static void
reload_deferred_cb(evutil_socket_t fd, short what, void *arg)
{
	parent_reload();
}

static void
reload_request_cb(const void *payload, size_t len)
{
	int64_t since = now_ms() - parent.last_reload_ms;

	/*
	 * An engine asking once a second at most: its SIGHUP is a request, not
	 * an order. One that comes sooner is done when the second is over, so
	 * an operator's reload right after another still gets its answer.
	 */
	if (since < 1000) {
		struct timeval tv = { 0, (suseconds_t)(1000 - since) * 1000 };

		if (parent.reload_timer == NULL)
			parent.reload_timer = evtimer_new(mxd->base, reload_deferred_cb, NULL);
		if (parent.reload_timer != NULL && !evtimer_pending(parent.reload_timer, NULL))
			evtimer_add(parent.reload_timer, &tv);
		return;
	}
	parent_reload();
}

static void
parent_flush_wait_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval tv = { 0, 50 * 1000 };

	if (!dbstore_busy() || now_ms() - parent.stop_started_ms > PRIV_STOP_FLUSH_MS) {
		event_base_loopexit(mxd->base, NULL);
		return;
	}
	evtimer_add(parent.stop_timer, &tv);
}

/* engine_exited - read what the engine sent before it went, give the database a moment, stop. */
static void
engine_exited(int status)
{
	parent.engine_gone = true;
	if (priv.priv_end)
		while (priv_channel_receive(priv.priv_end) == 1)
			;
	if (WIFEXITED(status)) {
		parent.exit_code = WEXITSTATUS(status);
		if (!parent.stop_forwarded) {
			log_warn("privsep: the SMTP engine (pid %d) exited with status %d unasked; stopping",
			    (int)parent.engine_pid, parent.exit_code);
			if (parent.exit_code == 0)
				parent.exit_code = 1;
		}
	} else {
		int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;

		log_warn("privsep: the SMTP engine (pid %d) was killed by signal %d (%s); stopping",
		    (int)parent.engine_pid, sig, strsignal(sig));
		parent.exit_code = 128 + sig;
	}
	parent.stop_started_ms = now_ms();
	parent.stop_timer = evtimer_new(mxd->base, parent_flush_wait_cb, NULL);
	parent_flush_wait_cb(-1, 0, NULL);
}

static void
parent_reap(void)
{
	int status;

	if (parent.engine_gone)
		return;
	if (waitpid(parent.engine_pid, &status, WNOHANG) == parent.engine_pid)
		engine_exited(status);
}

static void
parent_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		if (!parent.stop_forwarded)
			service_notify("STOPPING=1");
		parent.stop_forwarded = true;
		if (!parent.engine_gone)
			kill(parent.engine_pid, (int)sig);
		break;
	case SIGHUP:
		parent_reload();
		break;
	case SIGUSR1:
		if (!parent.engine_gone)
			kill(parent.engine_pid, SIGUSR1);
		if (priv.priv_end)
			log_info("privsep: from the engine %llu messages, %llu refused; to it %llu sent, %llu dropped",
			    (unsigned long long)priv.priv_end->received, (unsigned long long)priv.priv_end->refused,
			    (unsigned long long)priv.priv_end->sent, (unsigned long long)priv.priv_end->dropped);
		break;
	case SIGCHLD:
		parent_reap();
		http_parent_reap();
		break;
	}
}

/* parent_channel_closed - the engine closed its end: its exit status follows with SIGCHLD. */
static void
parent_channel_closed(struct priv_channel *ch)
{
	parent_reap();
}

void
priv_parent_run(struct config *c, pid_t engine, int chan_fd, int fd_fd)
{
	static const int sigs[5] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGCHLD };

	priv.role = PRIV_ROLE_PARENT;
	log_prefix = "priv: ";
	parent.engine_pid = engine;
	prctl(PR_SET_NAME, "mxtierd [priv]", 0, 0, 0);
	signal(SIGPIPE, SIG_IGN);
	/* The parent's copy of the control socket: only the engine accepts on it. */
	control_socket_close_inherited();
	mxd->config = c;
	/* Before any netlink socket or database connection exists, so the HTTP process inherits none. */
	http_parent_fork(c, (const int[]){ chan_fd, fd_fd }, 2);
	if ((mxd->base = event_base_new()) == NULL)
		fatalx("privsep: cannot create the event loop");
	priv.priv_end = priv_channel_new(chan_fd, TO_PRIVILEGED, "engine", parent_channel_closed);
	priv.fd_sock = fd_fd;
	parent.fd_ev = event_new(mxd->base, fd_fd, EV_READ | EV_PERSIST, fd_request_cb, NULL);
	if (priv.priv_end == NULL || parent.fd_ev == NULL || evutil_make_socket_nonblocking(fd_fd) == -1)
		fatalx("privsep: cannot set up the channel to the engine");
	event_add(parent.fd_ev, NULL);
	for (int i = 0; i < 5; i++) {
		parent.signals[i] = evsignal_new(mxd->base, sigs[i], parent_signal_cb, NULL);
		evsignal_add(parent.signals[i], NULL);
	}
	priv_signals_ready();
	priv_on(PRIV_MSG_RELOAD, reload_request_cb);
	log_info("privsep: privileged process; SMTP engine pid %d as %s", (int)engine, priv.user);
	privileged_services_start(c);
	parent_reap();		/* an engine that died before SIGCHLD was watched */
	event_base_dispatch(mxd->base);

	privileged_services_stop();
	control_socket_unlink();
	priv_channel_free(priv.priv_end);
	event_free(parent.fd_ev);
	close(fd_fd);
	if (parent.stop_timer)
		event_free(parent.stop_timer);
	if (parent.reload_timer)
		event_free(parent.reload_timer);
	for (int i = 0; i < 5; i++)
		event_free(parent.signals[i]);
	event_base_free(mxd->base);
	config_unref(mxd->config);
	log_info("privsep: privileged process stopped (exit %d)", parent.exit_code);
	exit(parent.exit_code);
}
