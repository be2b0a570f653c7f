/*
 * priv.c - privilege separation: the fork, the engine's drop to `user`,
 * the privileged parent's loop and signals, and the channel between them.
 *
 * The channel is a SOCK_SEQPACKET socketpair: one message per datagram
 * (a header and at most PRIV_MSG_MAX payload bytes), so a reader never
 * re-frames a stream a compromised peer controls. Each direction has a
 * bounded send queue; what does not fit is dropped and counted. Bulk data
 * (listings, reputation, config text) travels as a sealed memfd. Sockets
 * the engine may not make itself come from the parent over a second,
 * request/answer socketpair.
 */
#include "priv.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "control.h"
#include "daemon.h"
#include "db.h"
#include "db_rows.h"
#include "kernel.h"
#include "listener.h"
#include "log.h"

#define PRIV_READ_BURST		256	/* messages read per wakeup, so one side cannot starve the loop */
#define PRIV_BLOB_LISTINGS_MAX	(100000 * sizeof(struct priv_listing))
#define PRIV_BLOB_REPUTATION_MAX (100000 * sizeof(struct priv_reputation))
#define PRIV_BLOB_CONFIG_MAX	(1024 * 1024)
#define PRIV_LISTENER_WAIT_MS	5000	/* a reload binding a new tier address */
#define PRIV_TRANSPARENT_WAIT_MS 500	/* a relay: mail flows from the appliance's address instead */
#define PRIV_LOG_EVERY_MS	10000
#define PRIV_STOP_FLUSH_MS	2000	/* the parent's last database writes after the engine stopped */
#define PRIV_STACK_SCRUB	(32 * 1024)

extern char **environ;

enum priv_direction {
	TO_PRIVILEGED = 0,
	TO_ENGINE,
	FD_REQUEST,
	FD_REPLY
};

struct priv_hdr {
	uint32_t	type;
	uint32_t	len;
};

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
	[PRIV_MSG_DB_ROW] = { "db-row", TO_ENGINE, sizeof(struct priv_db_row), sizeof(struct priv_db_row), 0 },
	[PRIV_MSG_DB_DONE] = { "db-done", TO_ENGINE, sizeof(uint32_t), sizeof(uint32_t), 0 },
	[PRIV_MSG_DB_STATUS] = { "db-status", TO_ENGINE, sizeof(struct priv_db_status), sizeof(struct priv_db_status), 0 },
	[PRIV_MSG_DB_LISTINGS] = { "db-listings", TO_ENGINE, sizeof(uint64_t), sizeof(uint64_t), PRIV_BLOB_LISTINGS_MAX },
	[PRIV_MSG_DB_REPUTATION] = { "db-reputation", TO_ENGINE, sizeof(uint64_t), sizeof(uint64_t),
	    PRIV_BLOB_REPUTATION_MAX },
	[PRIV_MSG_CONFIG] = { "config", TO_ENGINE, sizeof(uint64_t), sizeof(uint64_t), PRIV_BLOB_CONFIG_MAX },
	[PRIV_MSG_FD_LISTENER] = { "fd-listener", FD_REQUEST, sizeof(struct priv_fd_request),
	    sizeof(struct priv_fd_request), 0 },
	[PRIV_MSG_FD_TRANSPARENT] = { "fd-transparent", FD_REQUEST, sizeof(struct priv_fd_request),
	    sizeof(struct priv_fd_request), 0 },
	[PRIV_MSG_FD_REPLY] = { "fd-reply", FD_REPLY, sizeof(struct priv_fd_reply), sizeof(struct priv_fd_reply), 0 },
};

/* One message waiting for room in the socket buffer; owns fd (or -1). */
struct priv_out {
	TAILQ_ENTRY(priv_out)	 entry;
	int			 fd;
	size_t			 len;
	char			 data[];
};

/* One end of the channel: it receives the messages of direction dir. */
struct priv_channel {
	const char		*peer;		/* who is at the other end, for logs */
	enum priv_direction	 dir;
	int			 fd;
	bool			 closed;
	struct event		*rd, *wr;
	TAILQ_HEAD(, priv_out)	 out;
	size_t			 queued;
	uint64_t		 sent, dropped, received, refused;
	int64_t			 last_log_ms;
};

static struct {
	enum priv_role		 role;
	bool			 dropped;
	uid_t			 uid;
	gid_t			 gid;
	char			 user[64];
	pid_t			 engine_pid;		/* parent */
	pid_t			 parent_pid;		/* engine */
	sigset_t		 saved_mask;		/* the mask before the split held signals back */
	bool			 signals_blocked;
	int			 channel_fd;		/* engine: its end before the loop exists */
	int			 fd_sock;		/* the socket-request socketpair end */
	struct event		*fd_ev;
	uint32_t		 next_fd_id;
	struct priv_channel	*engine_end;		/* receives TO_ENGINE (engine, single) */
	struct priv_channel	*priv_end;		/* receives TO_PRIVILEGED (parent, single) */
	priv_handler		 handlers[PRIV_MSG_COUNT];
	/* parent */
	struct event		*signals[5];
	struct event		*stop_timer;
	bool			 stop_forwarded;
	bool			 engine_gone;
	int			 exit_code;
	int64_t			 stop_started_ms;
	int64_t			 last_reload_ms;
} priv = { .channel_fd = -1, .fd_sock = -1 };

const char *
priv_msg_name(enum priv_msg_type type)
{
	return type < PRIV_MSG_COUNT ? msg_info[type].name : "unknown";
}

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

void
priv_on(enum priv_msg_type type, priv_handler fn)
{
	if (type > PRIV_MSG_NONE && type < PRIV_MSG_COUNT)
		priv.handlers[type] = fn;
}

/* ---- database values as a list of NULL-or-string ---- */

int
priv_strings_encode(char *buf, size_t cap, int n, const char *const *values)
{
	size_t o = 0;

	for (int i = 0; i < n; i++) {
		size_t len = values[i] ? strlen(values[i]) : 0;

		if (o + 2 + len > cap)
			return -1;
		buf[o++] = values[i] ? 1 : 0;
		if (values[i]) {
			memcpy(buf + o, values[i], len + 1);
			o += len + 1;
		}
	}
	return (int)o;
}

/* priv_strings_decode - exactly n values, each at most value_max bytes, nothing left over. */
int
priv_strings_decode(const char *buf, size_t len, int n, const char **values, size_t value_max)
{
	size_t o = 0;

	for (int i = 0; i < n; i++) {
		size_t slen;

		if (o >= len)
			return -1;
		switch (buf[o++]) {
		case 0:
			values[i] = NULL;
			break;
		case 1:
			slen = strnlen(buf + o, len - o);
			if (slen == len - o || slen > value_max)
				return -1;
			values[i] = buf + o;
			o += slen + 1;
			break;
		default:
			return -1;
		}
	}
	return o == len ? 0 : -1;
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

/* channel_sendmsg - one datagram now; 0 sent, 1 try later, -1 failed for good. */
static int
channel_sendmsg(int sock, const void *data, size_t len, int fd)
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
		int rc = channel_sendmsg(ch->fd, o->data, o->len, o->fd);

		if (rc == 1)
			return;
		if (rc == -1)
			ch->dropped++;
		else
			ch->sent++;
		TAILQ_REMOVE(&ch->out, o, entry);
		ch->queued--;
		if (o->fd >= 0)
			close(o->fd);
		free(o);
	}
	event_del(ch->wr);
}

/* channel_send - one message; fd (or -1) is the channel's from here on. */
static int
channel_send(struct priv_channel *ch, enum priv_msg_type type, const void *payload, size_t len, int fd)
{
	struct priv_out *o;
	struct priv_hdr hdr = { .type = type, .len = (uint32_t)len };
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
	if (ch->queued >= PRIV_QUEUE_MAX)
		goto drop;
	if ((o = malloc(sizeof(*o) + sizeof(hdr) + len)) == NULL)
		goto drop;
	memcpy(o->data, &hdr, sizeof(hdr));
	if (len)
		memcpy(o->data + sizeof(hdr), payload, len);
	o->len = sizeof(hdr) + len;
	o->fd = fd;
	if (TAILQ_EMPTY(&ch->out)) {
		rc = channel_sendmsg(ch->fd, o->data, o->len, fd);
		if (rc != 1) {
			free(o);
			if (fd >= 0)
				close(fd);
			if (rc == -1) {
				ch->dropped++;
				return -1;
			}
			ch->sent++;
			return 0;
		}
	}
	TAILQ_INSERT_TAIL(&ch->out, o, entry);
	ch->queued++;
	event_add(ch->wr, NULL);
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
static void
channel_dispatch(struct priv_channel *ch, const char *buf, size_t n, int flags, int fd)
{
	struct priv_hdr hdr = { .type = PRIV_MSG_COUNT };
	const struct priv_msg_info *info;
	const char *why = NULL;

	if (n < sizeof(hdr) || (flags & (MSG_TRUNC | MSG_CTRUNC))) {
		why = "truncated";
		goto refuse;
	}
	memcpy(&hdr, buf, sizeof(hdr));
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

static void channel_closed(struct priv_channel *ch);

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
 * recv_one - one datagram into buf with room for exactly one descriptor
 * (the kernel drops further ones and sets MSG_CTRUNC); *fd is it or -1,
 * *flags the message flags, with MSG_CTRUNC also for extra descriptors.
 */
static ssize_t
recv_one(int sock, void *buf, size_t len, int *fd, int *flags)
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

/* channel_receive - one datagram with at most one descriptor; 1 got one, 0 nothing now, -1 closed. */
static int
channel_receive(struct priv_channel *ch)
{
	static char buf[sizeof(struct priv_hdr) + PRIV_MSG_MAX];
	ssize_t n;
	int fd, flags;

	n = recv_one(ch->fd, buf, sizeof(buf), &fd, &flags);
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
		int rc = channel_receive(ch);

		if (rc == 0)
			return;
		if (rc == -1) {
			channel_closed(ch);
			return;
		}
	}
}

static struct priv_channel *
channel_new(int fd, enum priv_direction dir, const char *peer)
{
	struct priv_channel *ch = calloc(1, sizeof(*ch));

	if (ch == NULL)
		return NULL;
	ch->fd = fd;
	ch->dir = dir;
	ch->peer = peer;
	TAILQ_INIT(&ch->out);
	ch->rd = event_new(mxd->base, fd, EV_READ | EV_PERSIST, channel_read_cb, ch);
	ch->wr = event_new(mxd->base, fd, EV_WRITE | EV_PERSIST, channel_write_cb, ch);
	if (ch->rd == NULL || ch->wr == NULL || evutil_make_socket_nonblocking(fd) == -1) {
		if (ch->rd)
			event_free(ch->rd);
		if (ch->wr)
			event_free(ch->wr);
		free(ch);
		return NULL;
	}
	event_add(ch->rd, NULL);
	return ch;
}

static void
channel_free(struct priv_channel *ch)
{
	struct priv_out *o;

	size_t left = 0;

	if (ch == NULL)
		return;
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
	close(ch->fd);
	free(ch);
}

uint64_t
priv_engine_dropped(void)
{
	return priv.engine_end ? priv.engine_end->dropped : 0;
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

/* ---- sockets that need privilege ---- */

int
priv_open_transparent(const struct netaddr *client)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int fd, one = 1;

	netaddr_to_sockaddr(client, 0, &ss, &sslen);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if ((ss.ss_family == AF_INET ? setsockopt(fd, IPPROTO_IP, IP_TRANSPARENT, &one, sizeof(one)) :
	    setsockopt(fd, IPPROTO_IPV6, IPV6_TRANSPARENT, &one, sizeof(one))) == -1 ||
	    bind(fd, (struct sockaddr *)&ss, sslen) == -1) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

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
	out.req.id = ++priv.next_fd_id;
	out.req.addr = *addr;
	out.req.port = port;
	out.req.transparent = transparent;
	if (channel_sendmsg(priv.fd_sock, &out, sizeof(out), -1) != 0) {
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
		n = recv_one(priv.fd_sock, buf, sizeof(buf), &fd, &flags);
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
		return listener_socket_open(addr, port, transparent);
	return request_socket(PRIV_MSG_FD_LISTENER, addr, port, transparent, PRIV_LISTENER_WAIT_MS);
}

int
priv_transparent_socket(const struct netaddr *client)
{
	static int64_t quiet_until;
	int fd;

	if (priv.role != PRIV_ROLE_ENGINE || !priv.dropped)
		return priv_open_transparent(client);
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
			event_del(priv.fd_ev);
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
			    listener_socket_open(&req.addr, (uint16_t)req.port, req.transparent != 0) :
			    priv_open_transparent(&req.addr);
			if (fd == -1)
				out.reply.error = errno ? errno : EIO;
		} else {
			char text[NETADDR_STRLEN];

			log_warn("privsep: refused a %s socket for %s port %u: not in the configuration",
			    priv_msg_name(hdr.type), netaddr_format(&req.addr, text, sizeof(text)), req.port);
		}
		channel_sendmsg(sock, &out, sizeof(out), fd);
		if (fd >= 0)
			close(fd);
	}
}

/* ---- the split ---- */

/* scrub_stack - clear stack the config parser used: the conninfo must not linger in the engine. */
static void __attribute__((noinline))
scrub_stack(void)
{
	char area[PRIV_STACK_SCRUB];

	explicit_bzero(area, sizeof(area));
	__asm__ __volatile__("" : : "r"(area) : "memory");
}

/* scrub_environment - PGPASSWORD and friends: zero their bytes where /proc/PID/environ reads them. */
static void
scrub_environment(void)
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
	log_info("privsep: SMTP engine runs as %s (uid %u), no capabilities", priv.user, (unsigned)priv.uid);
}

static void parent_run(struct config *c, pid_t engine, int chan_fd, int fd_fd) __attribute__((noreturn));

int
priv_check_user(const struct config *c)
{
	struct passwd *pw;

	if (geteuid() != 0 || c->user[0] == '\0')
		return 0;
	if ((pw = getpwnam(c->user)) == NULL) {
		fprintf(stderr, "mxtierd: %s: user = %s: no such user; create it (packaging/install-deps does: "
		    "useradd --system ...) or set \"user =\" to run the SMTP engine as root\n", c->path, c->user);
		return -1;
	}
	if (pw->pw_uid == 0 || pw->pw_gid == 0) {
		fprintf(stderr, "mxtierd: %s: user = %s: is root or in group root; name an unprivileged user or set \"user =\"\n",
		    c->path, c->user);
		return -1;
	}
	return 0;
}

/* The signals either process handles in its loop: held back across the fork. */
static const int split_signals[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGCHLD };

/* priv_signals_ready - the caller's handlers are in place: let the held signals in. */
void
priv_signals_ready(void)
{
	if (!priv.signals_blocked)
		return;
	priv.signals_blocked = false;
	sigprocmask(SIG_SETMASK, &priv.saved_mask, NULL);
}

enum priv_role
priv_start(struct config *c)
{
	struct passwd *pw;
	int chan[2], fds[2];
	sigset_t blocked;
	pid_t pid, parent;

	if (geteuid() != 0 || c->user[0] == '\0') {
		if (geteuid() == 0)
			log_warn("privsep: off (user is empty): the SMTP engine runs as root");
		priv.role = PRIV_ROLE_SINGLE;
		return priv.role;
	}
	if (priv_check_user(c) == -1 || (pw = getpwnam(c->user)) == NULL)
		exit(1);
	priv.uid = pw->pw_uid;
	priv.gid = pw->pw_gid;
	snprintf(priv.user, sizeof(priv.user), "%s", c->user);
	if (strstr(c->database, "password=") != NULL)
		log_warn("privsep: database holds password=; prefer passfile= naming a file only root reads "
		    "(the engine never gets the conninfo either way)");
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan) == -1 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) == -1)
		fatalx("privsep: socketpair: %s", strerror(errno));
	/*
	 * Signals wait (blocked) until each process has its handlers: the
	 * engine may answer on a port before the parent's loop is set up, and
	 * a SIGHUP then must not kill the parent by its default action.
	 */
	sigemptyset(&blocked);
	for (size_t i = 0; i < sizeof(split_signals) / sizeof(split_signals[0]); i++)
		sigaddset(&blocked, split_signals[i]);
	sigprocmask(SIG_BLOCK, &blocked, &priv.saved_mask);
	priv.signals_blocked = true;
	parent = getpid();	/* before fork: getppid() in the child would already see a reaper if we died */
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == -1)
		fatalx("privsep: fork: %s", strerror(errno));
	if (pid > 0) {
		close(chan[1]);
		close(fds[1]);
		parent_run(c, pid, chan[0], fds[0]);
	}
	close(chan[0]);
	close(fds[0]);
	priv.role = PRIV_ROLE_ENGINE;
	priv.parent_pid = parent;
	priv.channel_fd = chan[1];
	priv.fd_sock = fds[1];
	prctl(PR_SET_NAME, "mxtierd [smtp]", 0, 0, 0);
	/* The engine never holds the conninfo: the parent connects. */
	if (c->database[0] != '\0') {
		explicit_bzero(c->database, strlen(c->database));
		free(c->database);
		if ((c->database = strdup(PRIV_DATABASE_REDACTED)) == NULL)
			abort();
	}
	scrub_environment();
	scrub_stack();
	return priv.role;
}

int
priv_engine_start(void)
{
	int sv[2];

	if (priv.role == PRIV_ROLE_ENGINE) {
		priv.engine_end = channel_new(priv.channel_fd, TO_ENGINE, "privileged process");
		return priv.engine_end ? 0 : -1;
	}
	/* One process: both ends here; the privileged services start in priv_local_start. */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1)
		return -1;
	priv.engine_end = channel_new(sv[0], TO_ENGINE, "privileged side");
	priv.priv_end = channel_new(sv[1], TO_PRIVILEGED, "engine side");
	return priv.engine_end && priv.priv_end ? 0 : -1;
}

/* privileged_handlers_start - what the privileged side serves, in the parent or in the one process. */
static void
privileged_services_start(const struct config *c)
{
	kernel_priv_start(c);
	dbstore_start(c);
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
	dbstore_stop();
	kernel_priv_stop();
	channel_free(priv.priv_end);
	priv.priv_end = NULL;
}

void
priv_engine_stop(void)
{
	/* Whatever is still queued for the parent goes out now, or not at all. */
	if (priv.engine_end && !TAILQ_EMPTY(&priv.engine_end->out)) {
		struct pollfd pfd = { .fd = priv.engine_end->fd, .events = POLLOUT };
		int64_t deadline = now_ms() + 1000;

		while (!TAILQ_EMPTY(&priv.engine_end->out) && now_ms() < deadline) {
			channel_write_cb(priv.engine_end->fd, EV_WRITE, priv.engine_end);
			if (!TAILQ_EMPTY(&priv.engine_end->out))
				poll(&pfd, 1, 50);
		}
	}
	channel_free(priv.engine_end);
	priv.engine_end = NULL;
	if (priv.fd_sock >= 0) {
		close(priv.fd_sock);
		priv.fd_sock = -1;
	}
}

/* ---- the privileged parent ---- */

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
		const char *k = p;
		bool redact = false;

		/* The same reading as config_load_string: key, spaces, '='; '#' starts a comment. */
		while (k < p + len && (*k == ' ' || *k == '\t'))
			k++;
		if ((size_t)(p + len - k) > 8 && strncmp(k, "database", 8) == 0) {
			const char *e = k + 8;

			while (e < p + len && (*e == ' ' || *e == '\t'))
				e++;
			redact = e < p + len && *e == '=';
		}
		if (redact) {
			if (o + sizeof(PRIV_DATABASE_REDACTED) + 16 > cap) {
				cap = cap * 2 + sizeof(PRIV_DATABASE_REDACTED) + 16;
				if ((out = realloc(out, cap)) == NULL)
					abort();
			}
			o += (size_t)snprintf(out + o, cap - o, "database = %s\n", PRIV_DATABASE_REDACTED);
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

	priv.last_reload_ms = now_ms();
	if (next == NULL) {
		if (text) {
			explicit_bzero(text, strlen(text));
			free(text);
		}
		log_warn("reload refused: %s (keeping the running configuration)", err);
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
	if (priv_blob_to_engine(PRIV_MSG_CONFIG, redacted, strlen(redacted)) == -1)
		log_warn("privsep: could not pass the new configuration to the engine");
	free(redacted);
}

static void
reload_request_cb(const void *payload, size_t len)
{
	/* An engine asking once a second at most: its SIGHUP is a request, not an order. */
	if (now_ms() - priv.last_reload_ms < 1000)
		return;
	parent_reload();
}

static void
parent_flush_wait_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval tv = { 0, 50 * 1000 };

	if (!dbstore_busy() || now_ms() - priv.stop_started_ms > PRIV_STOP_FLUSH_MS) {
		event_base_loopexit(mxd->base, NULL);
		return;
	}
	evtimer_add(priv.stop_timer, &tv);
}

/* engine_exited - read what the engine sent before it went, give the database a moment, stop. */
static void
engine_exited(int status)
{
	priv.engine_gone = true;
	if (priv.priv_end)
		while (channel_receive(priv.priv_end) == 1)
			;
	if (WIFEXITED(status)) {
		priv.exit_code = WEXITSTATUS(status);
		if (!priv.stop_forwarded) {
			log_warn("privsep: the SMTP engine (pid %d) exited with status %d unasked; stopping",
			    (int)priv.engine_pid, priv.exit_code);
			if (priv.exit_code == 0)
				priv.exit_code = 1;
		}
	} else {
		int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;

		log_warn("privsep: the SMTP engine (pid %d) was killed by signal %d (%s); stopping",
		    (int)priv.engine_pid, sig, strsignal(sig));
		priv.exit_code = 128 + sig;
	}
	priv.stop_started_ms = now_ms();
	priv.stop_timer = evtimer_new(mxd->base, parent_flush_wait_cb, NULL);
	parent_flush_wait_cb(-1, 0, NULL);
}

static void
parent_reap(void)
{
	int status;

	if (priv.engine_gone)
		return;
	if (waitpid(priv.engine_pid, &status, WNOHANG) == priv.engine_pid)
		engine_exited(status);
}

static void
parent_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		priv.stop_forwarded = true;
		if (!priv.engine_gone)
			kill(priv.engine_pid, (int)sig);
		break;
	case SIGHUP:
		parent_reload();
		break;
	case SIGUSR1:
		if (!priv.engine_gone)
			kill(priv.engine_pid, SIGUSR1);
		if (priv.priv_end)
			log_info("privsep: from the engine %llu messages, %llu refused; to it %llu sent, %llu dropped",
			    (unsigned long long)priv.priv_end->received, (unsigned long long)priv.priv_end->refused,
			    (unsigned long long)priv.priv_end->sent, (unsigned long long)priv.priv_end->dropped);
		break;
	case SIGCHLD:
		parent_reap();
		break;
	}
}

static void
channel_closed(struct priv_channel *ch)
{
	ch->closed = true;
	event_del(ch->rd);
	event_del(ch->wr);
	if (priv.role == PRIV_ROLE_PARENT) {
		/* The engine closed its end: its exit status follows with SIGCHLD. */
		parent_reap();
		return;
	}
	/* The engine: the parent is gone. PR_SET_PDEATHSIG brings a SIGTERM too; do not count on its timing. */
	log_warn("privsep: the privileged process closed the channel: stopping");
	kill(getpid(), SIGTERM);
}

static void
parent_run(struct config *c, pid_t engine, int chan_fd, int fd_fd)
{
	static const int sigs[5] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGCHLD };

	priv.role = PRIV_ROLE_PARENT;
	log_prefix = "priv: ";
	priv.engine_pid = engine;
	prctl(PR_SET_NAME, "mxtierd [priv]", 0, 0, 0);
	signal(SIGPIPE, SIG_IGN);
	/* The parent's copy of the control socket: only the engine accepts on it. */
	control_close_inherited();
	mxd->config = c;
	if ((mxd->base = event_base_new()) == NULL)
		fatalx("privsep: cannot create the event loop");
	priv.priv_end = channel_new(chan_fd, TO_PRIVILEGED, "engine");
	priv.fd_sock = fd_fd;
	priv.fd_ev = event_new(mxd->base, fd_fd, EV_READ | EV_PERSIST, fd_request_cb, NULL);
	if (priv.priv_end == NULL || priv.fd_ev == NULL || evutil_make_socket_nonblocking(fd_fd) == -1)
		fatalx("privsep: cannot set up the channel to the engine");
	event_add(priv.fd_ev, NULL);
	for (int i = 0; i < 5; i++) {
		priv.signals[i] = evsignal_new(mxd->base, sigs[i], parent_signal_cb, NULL);
		evsignal_add(priv.signals[i], NULL);
	}
	priv_signals_ready();
	priv_on(PRIV_MSG_RELOAD, reload_request_cb);
	log_info("privsep: privileged process; SMTP engine pid %d as %s", (int)engine, priv.user);
	privileged_services_start(c);
	parent_reap();		/* an engine that died before SIGCHLD was watched */
	event_base_dispatch(mxd->base);

	dbstore_stop();
	kernel_priv_stop();
	control_unlink();
	channel_free(priv.priv_end);
	event_free(priv.fd_ev);
	close(fd_fd);
	if (priv.stop_timer)
		event_free(priv.stop_timer);
	for (int i = 0; i < 5; i++)
		event_free(priv.signals[i]);
	event_base_free(mxd->base);
	config_unref(mxd->config);
	log_info("privsep: privileged process stopped (exit %d)", priv.exit_code);
	exit(priv.exit_code);
}
