/*
 * http_parent.c - the HTTP process (proxy/http/), as the privileged
 * parent forks and serves it. It is forked before the parent opens its
 * netlink socket or a database connection, sheds the conninfo, binds
 * http_listen and reads its password files as root, then drops to `user`
 * with no capability, like the SMTP engine. Everything it asks for comes
 * here as a request line on its own socketpair; the line is parsed and
 * checked again (http_request_parse), a listing goes to the database
 * writer and, as a control request, to the engine, whose answer is
 * passed back. Unsplit, proxy/engine/http_local.c serves the same server
 * in the one process.
 */
#include "priv_internal.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "db.h"
#include "http.h"
#include "log.h"

#define HTTP_ASK_TIMEOUT_MS	3000	/* the HTTP process waits this long for an answer */
#define HTTP_PENDING_MAX	64	/* listings waiting for the engine's answer */
#define HTTP_STOP_WAIT_MS	2000

struct http_pending {
	uint32_t	id;
	bool		used;
	char		note[96];	/* the database's part of the answer */
};

static struct {
	pid_t			pid;
	int			fd;		/* the parent's end of the socketpair */
	struct event		*ev;
	bool			up;
	uint64_t		requests, refused;
	struct http_pending	pending[HTTP_PENDING_MAX];
	unsigned		next_pending;
} http = { .pid = -1, .fd = -1 };

/* ---- in the HTTP process ---- */

static int
child_ask(void *arg, const char *request, char *answer, size_t cap)
{
	return http_channel_ask(*(int *)arg, request, answer, cap, HTTP_ASK_TIMEOUT_MS);
}

static void
child_stop_cb(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopexit(arg, NULL);
}

static void __attribute__((noreturn))
http_child_run(struct config *c, int fd)
{
	static int channel_fd;
	struct event_base *base;
	struct http_server *server;
	struct event *sig_term, *sig_int;
	char err[512];

	channel_fd = fd;
	prctl(PR_SET_NAME, "mxtierd [http]", 0, 0, 0);
	log_prefix = "http: ";
	/* Never the writer's conninfo here: the dashboard reads with dashboard_database. */
	priv_shed_conninfo(c);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);	/* the parent reloads; the HTTP settings take effect at the next start */
	signal(SIGUSR1, SIG_IGN);
	if ((base = event_base_new()) == NULL)
		fatalx("cannot create the event loop");
	server = http_server_new(base, c, child_ask, &channel_fd, err, sizeof(err));
	if (server == NULL) {
		log_warn("%s", err);
		_exit(1);
	}
	priv_drop_to_user("HTTP process");
	sig_term = evsignal_new(base, SIGTERM, child_stop_cb, base);
	sig_int = evsignal_new(base, SIGINT, child_stop_cb, base);
	evsignal_add(sig_term, NULL);
	evsignal_add(sig_int, NULL);
	priv_signals_ready();
	event_base_dispatch(base);
	http_server_free(server);
	event_free(sig_term);
	event_free(sig_int);
	event_base_free(base);
	_exit(0);
}

void
http_parent_fork(struct config *c, const int *close_fds, int nclose)
{
	int sv[2];
	pid_t pid;

	if (c->http_listen[0] == '\0')
		return;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1)
		fatalx("http: socketpair: %s", strerror(errno));
	priv.parent_pid = getpid();
	fflush(stderr);
	if ((pid = fork()) == -1)
		fatalx("http: fork: %s", strerror(errno));
	if (pid == 0) {
		close(sv[0]);
		for (int i = 0; i < nclose; i++)
			close(close_fds[i]);
		http_child_run(c, sv[1]);
	}
	close(sv[1]);
	http.pid = pid;
	http.fd = sv[0];
	http.up = true;
	log_info("http: HTTP process pid %d on %s", (int)pid, c->http_listen);
}

/* ---- in the parent ---- */

static void
answer_child(uint32_t id, const char *text, size_t len, const char *note)
{
	static char out[sizeof(uint32_t) + PRIV_MSG_MAX + 128];
	size_t n = sizeof(id);

	memcpy(out, &id, sizeof(id));
	if (len > PRIV_MSG_MAX)
		len = PRIV_MSG_MAX;
	memcpy(out + n, text, len);
	n += len;
	if (note && note[0])
		n += (size_t)snprintf(out + n, sizeof(out) - n, "%s", note);
	if (http.fd >= 0 && send(http.fd, out, n, MSG_DONTWAIT | MSG_NOSIGNAL) == -1)
		log_warn("http: cannot answer the HTTP process: %s", strerror(errno));
}

/* control_reply_cb - the engine's answer to a request the HTTP process made. */
static void
control_reply_cb(const void *payload, size_t len)
{
	uint32_t id;
	const char *note = NULL;

	memcpy(&id, payload, sizeof(id));
	for (unsigned i = 0; i < HTTP_PENDING_MAX; i++) {
		if (http.pending[i].used && http.pending[i].id == id) {
			http.pending[i].used = false;
			note = http.pending[i].note;
			break;
		}
	}
	answer_child(id, (const char *)payload + sizeof(id), len - sizeof(id), note);
}

/* serve_request - one request line: checked, the database's part done here, the rest asked of the engine. */
static void
serve_request(uint32_t id, const char *line)
{
	const struct config *c = mxd->config;
	struct http_request rq;
	char err[128], control[sizeof(uint32_t) + HTTP_LINE_MAX + 1];
	struct http_pending *p = NULL;

	if (http_request_parse(line, &rq, err, sizeof(err)) == -1 ||
	    http_request_control_line(&rq, control + sizeof(id), sizeof(control) - sizeof(id)) == -1) {
		http.refused++;
		log_warn("http: refused a request from the HTTP process: %s", err);
		snprintf(control, sizeof(control), "error: refused: %s\n", err);
		answer_child(id, control, strlen(control), NULL);
		return;
	}
	http.requests++;
	if (rq.kind == HTTP_REQ_LISTING) {
		int64_t ttl = rq.ttl_ms ? rq.ttl_ms : rq.block ? c->block_ttl : c->pass_ttl;
		int db = dbstore_listing_change(rq.add, rq.block, rq.address, ttl, rq.user);

		p = &http.pending[http.next_pending++ % HTTP_PENDING_MAX];
		p->used = true;
		p->id = id;
		snprintf(p->note, sizeof(p->note), "database: %s\n", db == 0 ? "queued" : "off");
		log_info("http: %s %s %s %s%s%s (database: %s)", rq.user, rq.block ? "block" : "allow", rq.add ? "add" : "del",
		    rq.address, rq.ttl[0] ? " ttl=" : "", rq.ttl, db == 0 ? "queued" : "off");
	}
	memcpy(control, &id, sizeof(id));
	if (priv_to_engine(PRIV_MSG_CONTROL, control, sizeof(id) + strlen(control + sizeof(id))) == -1) {
		if (p)
			p->used = false;
		answer_child(id, "error: the SMTP engine's queue is full\n", 39, NULL);
	}
}

static void
http_read_cb(evutil_socket_t fd, short what, void *arg)
{
	for (int i = 0; i < PRIV_READ_BURST; i++) {
		char buf[sizeof(uint32_t) + HTTP_LINE_MAX + 1];
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		uint32_t id;

		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		if (n <= 0) {
			log_warn("http: the HTTP process closed its channel");
			event_del(http.ev);
			http.up = false;
			return;
		}
		if ((size_t)n <= sizeof(id) || (size_t)n > sizeof(id) + HTTP_LINE_MAX) {
			http.refused++;
			log_warn("http: refused a request from the HTTP process (length %zd)", n);
			continue;
		}
		memcpy(&id, buf, sizeof(id));
		buf[n] = '\0';
		if (strlen(buf + sizeof(id)) != (size_t)n - sizeof(id)) {
			http.refused++;
			answer_child(id, "error: refused: NUL in request\n", 31, NULL);
			continue;
		}
		serve_request(id, buf + sizeof(id));
	}
}

void
http_parent_start(void)
{
	priv_on(PRIV_MSG_CONTROL_REPLY, control_reply_cb);
	if (http.fd < 0)
		return;
	if (evutil_make_socket_nonblocking(http.fd) == -1 ||
	    (http.ev = event_new(mxd->base, http.fd, EV_READ | EV_PERSIST, http_read_cb, NULL)) == NULL)
		fatalx("http: cannot watch the HTTP process's channel");
	event_add(http.ev, NULL);
}

void
http_parent_reap(void)
{
	int status;

	if (http.pid <= 0 || waitpid(http.pid, &status, WNOHANG) != http.pid)
		return;
	if (WIFEXITED(status))
		log_warn("http: the HTTP process (pid %d) exited with status %d; the dashboard is off until a restart",
		    (int)http.pid, WEXITSTATUS(status));
	else
		log_warn("http: the HTTP process (pid %d) was killed by signal %d; the dashboard is off until a restart",
		    (int)http.pid, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	http.pid = -1;
	http.up = false;
}

void
http_parent_stop(void)
{
	if (http.pid > 0) {
		kill(http.pid, SIGTERM);
		for (int waited = 0; waited < HTTP_STOP_WAIT_MS; waited += 10) {
			if (waitpid(http.pid, NULL, WNOHANG) == http.pid) {
				http.pid = -1;
				break;
			}
			usleep(10 * 1000);
		}
		if (http.pid > 0) {
			kill(http.pid, SIGKILL);
			waitpid(http.pid, NULL, 0);
			http.pid = -1;
		}
	}
	if (http.ev) {
		event_free(http.ev);
		http.ev = NULL;
	}
	if (http.fd >= 0) {
		close(http.fd);
		http.fd = -1;
	}
	http.up = false;
}

void
priv_http_local(bool up, int requests, int refused)
{
	http.up = up;
	http.requests += (uint64_t)requests;
	http.refused += (uint64_t)refused;
}

void
http_parent_counters(struct priv_parent_stats *out)
{
	out->http_up = http.up;
	out->http_requests = http.requests;
	out->http_refused = http.refused;
}
