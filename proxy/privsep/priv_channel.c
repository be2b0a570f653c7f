/*
 * priv_channel.c - the channel between the SMTP engine and the privileged
 * side, in both processes (and both ends in the one process, unsplit).
 *
 * The channel is a SOCK_SEQPACKET socketpair: one message per datagram
 * (a header and at most PRIV_MSG_MAX payload bytes), so a reader never
 * re-frames a stream a compromised peer controls. Each message type has
 * its direction and length bounds in the table below, checked before any
 * handler runs. Each direction has a bounded send queue; what does not
 * fit is dropped and counted. Bulk data (listings, reputation, config
 * text) travels as a sealed memfd. Small messages sent in one loop turn
 * travel as one bundle datagram, whose records are checked like
 * datagrams of their own.
 */
#include "priv_internal.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "db_rows.h"
#include "log.h"

/* The process's side of the split, shared by all priv files: defined here, at the bottom. */
struct priv_state priv = { .channel_fd = -1, .fd_sock = -1 };

static struct {
	sigset_t	saved_mask;	/* the mask before the split held signals back */
	bool		signals_blocked;
} held;

/* The signals either process handles in its loop: held back across the fork. */
static const int split_signals[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGCHLD };

enum priv_role
priv_role(void)
{
	return priv.role;
}

bool
priv_split(void)
{
	return priv.role != PRIV_ROLE_SINGLE;
}

/* priv_signals_hold - block the loop's signals until each process has its handlers. */
void
priv_signals_hold(void)
{
	sigset_t blocked;

	sigemptyset(&blocked);
	for (size_t i = 0; i < sizeof(split_signals) / sizeof(split_signals[0]); i++)
		sigaddset(&blocked, split_signals[i]);
	sigprocmask(SIG_BLOCK, &blocked, &held.saved_mask);
	held.signals_blocked = true;
}

/* priv_signals_ready - the caller's handlers are in place: let the held signals in. */
void
priv_signals_ready(void)
{
	if (!held.signals_blocked)
		return;
	held.signals_blocked = false;
	sigprocmask(SIG_SETMASK, &held.saved_mask, NULL);
}

#define PRIV_BLOB_LISTINGS_MAX	(100000 * sizeof(struct priv_listing))
#define PRIV_BLOB_REPUTATION_MAX (100000 * sizeof(struct priv_reputation))
#define PRIV_LOG_EVERY_MS	10000

static const struct priv_msg_info {
	const char		*name;
	enum priv_direction	 dir;
	size_t			 min, max;	/* payload bytes */
	size_t			 blob_max;	/* > 0: the payload is a uint64 length and a memfd carries the data */
} msg_info[PRIV_MSG_COUNT] = {
	[PRIV_MSG_NONE] = { "none", TO_PRIVILEGED, 1, 0, 0 },	/* never valid */
	[PRIV_MSG_KERNEL_LISTING] = { "kernel-listing", TO_PRIVILEGED, sizeof(struct priv_kernel_listing),
	    sizeof(struct priv_kernel_listing), 0 },
	[PRIV_MSG_DB_SESSION] = { "db-session", TO_PRIVILEGED, DB_ROW_SESSION_WIRE_VALUES,
	    DB_ROW_SESSION_WIRE_VALUES * (PRIV_DB_VALUE_MAX + 2), 0 },
	[PRIV_MSG_DB_CONTACT] = { "db-contact", TO_PRIVILEGED, DB_ROW_CONTACT_WIRE_VALUES,
	    DB_ROW_CONTACT_WIRE_VALUES * (PRIV_DB_VALUE_MAX + 2), 0 },
	[PRIV_MSG_DB_HEARTBEAT] = { "db-heartbeat", TO_PRIVILEGED, sizeof(struct priv_db_heartbeat),
	    sizeof(struct priv_db_heartbeat), 0 },
	[PRIV_MSG_DB_LOOKUP] = { "db-lookup", TO_PRIVILEGED, sizeof(uint32_t) + 3,
	    sizeof(uint32_t) + 3 * (PRIV_DB_KEY_MAX + 2), 0 },
	[PRIV_MSG_RELOAD] = { "reload", TO_PRIVILEGED, 0, 0, 0 },
	[PRIV_MSG_CONTROL_REPLY] = { "control-reply", TO_PRIVILEGED, sizeof(uint32_t), PRIV_MSG_MAX, 0 },
	[PRIV_MSG_DB_ROW] = { "db-row", TO_ENGINE, sizeof(struct priv_db_row), sizeof(struct priv_db_row), 0 },
	[PRIV_MSG_DB_DONE] = { "db-done", TO_ENGINE, sizeof(uint32_t), sizeof(uint32_t), 0 },
	[PRIV_MSG_DB_STATUS] = { "db-status", TO_ENGINE, sizeof(struct priv_db_status), sizeof(struct priv_db_status), 0 },
	[PRIV_MSG_DB_LISTINGS] = { "db-listings", TO_ENGINE, sizeof(uint64_t), sizeof(uint64_t), PRIV_BLOB_LISTINGS_MAX },
	[PRIV_MSG_DB_REPUTATION] = { "db-reputation", TO_ENGINE, sizeof(uint64_t), sizeof(uint64_t),
	    PRIV_BLOB_REPUTATION_MAX },
	[PRIV_MSG_CONFIG] = { "config", TO_ENGINE, sizeof(uint64_t), sizeof(uint64_t), PRIV_BLOB_CONFIG_MAX },
	[PRIV_MSG_RELOAD_REFUSED] = { "reload-refused", TO_ENGINE, 1, PRIV_REFUSAL_MAX, 0 },
	[PRIV_MSG_PARENT_STATS] = { "parent-stats", TO_ENGINE, sizeof(struct priv_parent_stats),
	    sizeof(struct priv_parent_stats), 0 },
	[PRIV_MSG_CONTROL] = { "control", TO_ENGINE, sizeof(uint32_t) + 1, sizeof(uint32_t) + PRIV_CONTROL_LINE_MAX, 0 },
	[PRIV_MSG_FD_LISTENER] = { "fd-listener", FD_REQUEST, sizeof(struct priv_fd_request),
	    sizeof(struct priv_fd_request), 0 },
	[PRIV_MSG_FD_TRANSPARENT] = { "fd-transparent", FD_REQUEST, sizeof(struct priv_fd_request),
	    sizeof(struct priv_fd_request), 0 },
	[PRIV_MSG_FD_REPLY] = { "fd-reply", FD_REPLY, sizeof(struct priv_fd_reply), sizeof(struct priv_fd_reply), 0 },
	[PRIV_MSG_BUNDLE] = { "bundle", EITHER, 2 * sizeof(struct priv_hdr), PRIV_MSG_MAX, 0 },
};

const char *
priv_msg_name(enum priv_msg_type type)
{
	return type < PRIV_MSG_COUNT ? msg_info[type].name : "unknown";
}

void
priv_on(enum priv_msg_type type, priv_handler fn)
{
	if (type > PRIV_MSG_NONE && type < PRIV_MSG_COUNT)
		priv.handlers[type] = fn;
}

/* ---- the channel ---- */

static void
channel_log_limited(struct priv_channel *ch, uint32_t type, const char *why)
{
	int64_t now = now_ms();

	if (now - ch->last_log_ms < PRIV_LOG_EVERY_MS)
		return;
	ch->last_log_ms = now;
	log_warn("privsep: refused a %s message from the %s: %s (%llu refused so far)",
	    type < PRIV_MSG_COUNT ? msg_info[type].name : "unknown", ch->peer, why, (unsigned long long)ch->refused);
}

int
priv_sendmsg(int sock, const void *data, size_t len, int fd)
{
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	union {
		char		buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr	align;
	} control;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		struct cmsghdr *cm;

		memset(&control, 0, sizeof(control));
		msg.msg_control = control.buf;
		msg.msg_controllen = sizeof(control.buf);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	if (sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) == -1)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS || errno == EINTR ? 1 : -1;
	return 0;
}

static void
channel_write_cb(evutil_socket_t sock, short what, void *arg)
{
	struct priv_channel *ch = arg;
	struct priv_out *o;

	while ((o = TAILQ_FIRST(&ch->out)) != NULL) {
		int rc = priv_sendmsg(ch->fd, o->data, o->len, o->fd);

		if (rc == 1)
			return;
		if (rc == -1)
			ch->dropped++;
		else
			ch->sent++;
		TAILQ_REMOVE(&ch->out, o, entry);
		ch->queued--;
		ch->queued_bytes -= o->len;
		if (o->fd >= 0)
			close(o->fd);
		free(o);
	}
	event_del(ch->wr);
}

/* channel_queue - one datagram (header included) sent now or queued; fd (or -1) is the channel's from here on. */
static int
channel_queue(struct priv_channel *ch, const char *data, size_t len, int fd)
{
	struct priv_out *o;
	int rc;

	if (TAILQ_EMPTY(&ch->out)) {
		rc = priv_sendmsg(ch->fd, data, len, fd);
		if (rc != 1) {
			if (fd >= 0)
				close(fd);
			return rc;
		}
	}
	if (ch->queued >= PRIV_QUEUE_MAX || ch->queued_bytes + len > PRIV_QUEUE_BYTES_MAX ||
	    (o = malloc(sizeof(*o) + len)) == NULL) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	memcpy(o->data, data, len);
	o->len = len;
	o->fd = fd;
	TAILQ_INSERT_TAIL(&ch->out, o, entry);
	ch->queued++;
	ch->queued_bytes += len;
	event_add(ch->wr, NULL);
	return 0;
}

/* bundle_flush - the messages gathered this loop turn as one datagram (a lone one as itself). */
static void
bundle_flush(struct priv_channel *ch)
{
	struct priv_hdr hdr = { .type = PRIV_MSG_BUNDLE, .len = (uint32_t)ch->bundle_len };
	const char *data = ch->bundle;
	size_t len = sizeof(hdr) + ch->bundle_len, count = ch->bundle_count;

	if (count == 0)
		return;
	if (count == 1) {
		data += sizeof(hdr);
		len -= sizeof(hdr);
	} else {
		memcpy(ch->bundle, &hdr, sizeof(hdr));
	}
	ch->bundle_len = 0;
	ch->bundle_count = 0;
	if (ch->closed || channel_queue(ch, data, len, -1) == -1)
		ch->dropped += count;
	else
		ch->sent += count;
}

static void
bundle_cb(evutil_socket_t fd, short what, void *arg)
{
	bundle_flush(arg);
}

/*
 * bundle_add - a message without descriptor into this turn's bundle; -1
 * (dropped) when the queue it will join is already full, so that a drop
 * is always the sender's to count, never silent later.
 */
static int
bundle_add(struct priv_channel *ch, const struct priv_hdr *hdr, const void *payload, size_t len)
{
	size_t rec = sizeof(*hdr) + len;

	if (ch->bundle_len + rec > PRIV_MSG_MAX)
		bundle_flush(ch);
	if (ch->queued >= PRIV_QUEUE_MAX || ch->queued_bytes + PRIV_MSG_MAX > PRIV_QUEUE_BYTES_MAX)
		return -1;
	memcpy(ch->bundle + sizeof(*hdr) + ch->bundle_len, hdr, sizeof(*hdr));
	if (len)
		memcpy(ch->bundle + 2 * sizeof(*hdr) + ch->bundle_len, payload, len);
	ch->bundle_len += rec;
	if (ch->bundle_count++ == 0)
		event_active(ch->bundle_ev, EV_TIMEOUT, 1);
	return 0;
}

/* channel_send - one message; fd (or -1) is the channel's from here on. */
static int
channel_send(struct priv_channel *ch, enum priv_msg_type type, const void *payload, size_t len, int fd)
{
	struct priv_out *o;
	struct priv_hdr hdr = { .type = type, .len = (uint32_t)len };
	char *data;
	int rc;

	if (ch == NULL || ch->closed || len > PRIV_MSG_MAX)
		goto drop;
	/*
	 * A newer blob (listings, reputation, config) supersedes a queued one of
	 * its type: a peer that stops reading holds at most one memfd per type.
	 */
	if (fd >= 0) {
		TAILQ_FOREACH(o, &ch->out, entry) {
			struct priv_hdr queued;

			memcpy(&queued, o->data, sizeof(queued));
			if (o->fd >= 0 && queued.type == type && o->len == sizeof(hdr) + len) {
				memcpy(o->data + sizeof(hdr), payload, len);
				close(o->fd);
				o->fd = fd;
				return 0;
			}
		}
	}
	if (fd < 0 && sizeof(hdr) + len <= PRIV_MSG_MAX - sizeof(hdr)) {
		if (bundle_add(ch, &hdr, payload, len) == -1)
			goto drop;
		return 0;
	}
	/* In order: what was gathered before this one goes first. */
	bundle_flush(ch);
	if ((data = malloc(sizeof(hdr) + len)) == NULL)
		goto drop;
	memcpy(data, &hdr, sizeof(hdr));
	if (len)
		memcpy(data + sizeof(hdr), payload, len);
	rc = channel_queue(ch, data, sizeof(hdr) + len, fd);
	free(data);
	if (rc == -1) {
		ch->dropped++;
		return -1;
	}
	ch->sent++;
	return 0;
drop:
	if (fd >= 0)
		close(fd);
	if (ch)
		ch->dropped++;
	return -1;
}

/* blob_read - the memfd's bytes (NUL-terminated for text); NULL if its size is not the announced one. */
static char *
blob_read(int fd, uint64_t len, size_t max)
{
	struct stat st;
	char *data;
	size_t got = 0;

	if (len > max || fstat(fd, &st) == -1 || (uint64_t)st.st_size != len)
		return NULL;
	if ((data = malloc(len + 1)) == NULL)
		return NULL;
	while (got < len) {
		ssize_t n = pread(fd, data + got, len - got, (off_t)got);

		if (n <= 0) {
			free(data);
			return NULL;
		}
		got += (size_t)n;
	}
	data[len] = '\0';
	return data;
}

/*
 * channel_dispatch - check one datagram against its type (direction,
 * length, descriptor) and hand it on. A refusal is counted and logged:
 * from the engine it means a bug or an attacker.
 */
static void bundle_dispatch(struct priv_channel *ch, const char *buf, size_t n);

static void
channel_dispatch_in(struct priv_channel *ch, const char *buf, size_t n, int flags, int fd, bool in_bundle)
{
	struct priv_hdr hdr = { .type = PRIV_MSG_COUNT };
	const struct priv_msg_info *info;
	const char *why = NULL;

	if (n < sizeof(hdr) || (flags & (MSG_TRUNC | MSG_CTRUNC))) {
		why = "truncated";
		goto refuse;
	}
	memcpy(&hdr, buf, sizeof(hdr));
	if (hdr.type == PRIV_MSG_BUNDLE && fd < 0 && !in_bundle && hdr.len == n - sizeof(hdr)) {
		bundle_dispatch(ch, buf + sizeof(hdr), hdr.len);
		return;
	}
	if (hdr.type == PRIV_MSG_NONE || hdr.type >= PRIV_MSG_COUNT || msg_info[hdr.type].dir != ch->dir) {
		why = "not expected in this direction";
		goto refuse;
	}
	info = &msg_info[hdr.type];
	if (hdr.len != n - sizeof(hdr) || hdr.len < info->min || hdr.len > info->max) {
		why = "bad length";
		goto refuse;
	}
	if ((info->blob_max > 0) != (fd >= 0)) {
		why = fd >= 0 ? "unexpected descriptor" : "descriptor missing";
		goto refuse;
	}
	ch->received++;
	if (info->blob_max > 0) {
		uint64_t len;
		char *data;

		memcpy(&len, buf + sizeof(hdr), sizeof(len));
		if ((data = blob_read(fd, len, info->blob_max)) == NULL) {
			why = "bad blob";
			goto refuse;
		}
		close(fd);
		if (priv.handlers[hdr.type])
			priv.handlers[hdr.type](data, (size_t)len);
		free(data);
		return;
	}
	if (priv.handlers[hdr.type])
		priv.handlers[hdr.type](buf + sizeof(hdr), hdr.len);
	return;
refuse:
	if (fd >= 0)
		close(fd);
	ch->refused++;
	channel_log_limited(ch, n >= sizeof(hdr) ? hdr.type : PRIV_MSG_COUNT, why);
}

static void
channel_dispatch(struct priv_channel *ch, const char *buf, size_t n, int flags, int fd)
{
	channel_dispatch_in(ch, buf, n, flags, fd, false);
}

/*
 * bundle_dispatch - each record as if it were a datagram of its own (the
 * same checks; no descriptor, no bundle inside a bundle). A record whose
 * length runs past the bundle ends it: the rest cannot be framed.
 */
static void
bundle_dispatch(struct priv_channel *ch, const char *buf, size_t n)
{
	size_t off = 0;

	while (off < n) {
		struct priv_hdr rec;

		if (n - off < sizeof(rec)) {
			ch->refused++;
			channel_log_limited(ch, PRIV_MSG_BUNDLE, "truncated record in a bundle");
			return;
		}
		memcpy(&rec, buf + off, sizeof(rec));
		if (rec.len > n - off - sizeof(rec)) {
			ch->refused++;
			channel_log_limited(ch, PRIV_MSG_BUNDLE, "record longer than its bundle");
			return;
		}
		channel_dispatch_in(ch, buf + off, sizeof(rec) + rec.len, 0, -1, true);
		off += sizeof(rec) + rec.len;
	}
}

/* channel_closed - the peer closed its end: no more reading or writing; the owner decides what follows. */
static void
channel_closed(struct priv_channel *ch)
{
	ch->closed = true;
	event_del(ch->rd);
	event_del(ch->wr);
	if (ch->on_closed)
		ch->on_closed(ch);
}

/*
 * take_descriptor - the one descriptor a message may carry, or -1. Every
 * other descriptor the kernel installed is closed here, whatever the cmsg
 * looks like: a peer that sends several must not be able to leak them into
 * this process. *extra is set when there were more than one.
 */
static int
take_descriptor(struct msghdr *msg, bool *extra)
{
	struct cmsghdr *cm;
	int fd = -1;

	*extra = false;
	for (cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		size_t count;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len < CMSG_LEN(0))
			continue;
		count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < count; i++) {
			int got;

			memcpy(&got, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (fd == -1) {
				fd = got;
			} else {
				close(got);
				*extra = true;
			}
		}
	}
	return fd;
}

/*
 * priv_recv_one - one datagram into buf with room for exactly one descriptor
 * (the kernel drops further ones and sets MSG_CTRUNC); *fd is it or -1,
 * *flags the message flags, with MSG_CTRUNC also for extra descriptors.
 */
ssize_t
priv_recv_one(int sock, void *buf, size_t len, int *fd, int *flags)
{
	union {
		char		buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr	align;
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
	    .msg_controllen = CMSG_LEN(sizeof(int)) };
	ssize_t n;
	bool extra;

	*fd = -1;
	n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n <= 0)
		return n;
	*fd = take_descriptor(&msg, &extra);
	*flags = msg.msg_flags | (extra ? MSG_CTRUNC : 0);
	return n;
}

int
priv_channel_receive(struct priv_channel *ch)
{
	static char buf[sizeof(struct priv_hdr) + PRIV_MSG_MAX];
	ssize_t n;
	int fd, flags;

	n = priv_recv_one(ch->fd, buf, sizeof(buf), &fd, &flags);
	if (n == -1)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
	if (n == 0)
		return -1;
	channel_dispatch(ch, buf, (size_t)n, flags, fd);
	return 1;
}

static void
channel_read_cb(evutil_socket_t sock, short what, void *arg)
{
	struct priv_channel *ch = arg;

	for (int i = 0; i < PRIV_READ_BURST; i++) {
		int rc = priv_channel_receive(ch);

		if (rc == 0)
			return;
		if (rc == -1) {
			channel_closed(ch);
			return;
		}
	}
}

struct priv_channel *
priv_channel_new(int fd, enum priv_direction dir, const char *peer, priv_closed_fn on_closed)
{
	struct priv_channel *ch = calloc(1, sizeof(*ch));

	if (ch == NULL)
		return NULL;
	ch->fd = fd;
	ch->dir = dir;
	ch->peer = peer;
	ch->on_closed = on_closed;
	TAILQ_INIT(&ch->out);
	ch->rd = event_new(mxd->base, fd, EV_READ | EV_PERSIST, channel_read_cb, ch);
	ch->wr = event_new(mxd->base, fd, EV_WRITE | EV_PERSIST, channel_write_cb, ch);
	ch->bundle_ev = event_new(mxd->base, -1, 0, bundle_cb, ch);
	ch->bundle = malloc(sizeof(struct priv_hdr) + PRIV_MSG_MAX);
	if (ch->rd == NULL || ch->wr == NULL || ch->bundle_ev == NULL || ch->bundle == NULL ||
	    evutil_make_socket_nonblocking(fd) == -1) {
		if (ch->rd)
			event_free(ch->rd);
		if (ch->wr)
			event_free(ch->wr);
		if (ch->bundle_ev)
			event_free(ch->bundle_ev);
		free(ch->bundle);
		free(ch);
		return NULL;
	}
	event_add(ch->rd, NULL);
	return ch;
}

void
priv_channel_free(struct priv_channel *ch)
{
	struct priv_out *o;

	size_t left = 0;

	if (ch == NULL)
		return;
	bundle_flush(ch);
	while ((o = TAILQ_FIRST(&ch->out)) != NULL) {
		TAILQ_REMOVE(&ch->out, o, entry);
		left++;
		if (o->fd >= 0)
			close(o->fd);
		free(o);
	}
	/* What the last flush could not send is lost: say how much. */
	if (left > 0)
		log_warn("privsep: %zu message(s) to the %s not sent at stop", left, ch->peer);
	event_free(ch->rd);
	event_free(ch->wr);
	event_free(ch->bundle_ev);
	free(ch->bundle);
	close(ch->fd);
	free(ch);
}


void
priv_channel_drain(struct priv_channel *ch, int64_t wait_ms)
{
	struct pollfd pfd = { .fd = ch ? ch->fd : -1, .events = POLLOUT };
	int64_t deadline = now_ms() + wait_ms;

	if (ch)
		bundle_flush(ch);
	while (ch && !TAILQ_EMPTY(&ch->out) && now_ms() < deadline) {
		channel_write_cb(ch->fd, EV_WRITE, ch);
		if (!TAILQ_EMPTY(&ch->out))
			poll(&pfd, 1, 50);
	}
}

uint64_t
priv_engine_dropped(void)
{
	return priv.engine_end ? priv.engine_end->dropped : 0;
}

void
priv_channel_counters(uint64_t out[4])
{
	const struct priv_channel *ch = priv.priv_end;

	out[0] = ch ? ch->received : 0;
	out[1] = ch ? ch->refused : 0;
	out[2] = ch ? ch->sent : 0;
	out[3] = ch ? ch->dropped : 0;
}

int
priv_to_privileged(enum priv_msg_type type, const void *payload, size_t len)
{
	return channel_send(priv.engine_end, type, payload, len, -1);
}

int
priv_to_engine(enum priv_msg_type type, const void *payload, size_t len)
{
	return channel_send(priv.priv_end, type, payload, len, -1);
}

int
priv_blob_to_engine(enum priv_msg_type type, const void *data, size_t len)
{
	uint64_t announced = len;
	size_t done = 0;
	int fd = memfd_create("mxtier-blob", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd == -1)
		goto fail;
	while (done < len) {
		ssize_t n = write(fd, (const char *)data + done, len - done);

		if (n <= 0) {
			close(fd);
			goto fail;
		}
		done += (size_t)n;
	}
	/* Sealed: the size the receiver checks is the size it reads. */
	fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
	return channel_send(priv.priv_end, type, &announced, sizeof(announced), fd);
fail:
	log_warn("privsep: cannot pass %s to the engine: %s", priv_msg_name(type), strerror(errno));
	if (priv.priv_end)
		priv.priv_end->dropped++;
	return -1;
}
