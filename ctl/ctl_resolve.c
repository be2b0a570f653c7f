/*
 * ctl_resolve.c - blocking lookups for mxtierctl (see ctl_resolve.h).
 */
#include "ctl_resolve.h"

#include <arpa/nameser.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CTL_DNS_SERVERS_MAX	4
#define CTL_DNS_PACKET_MAX	65535

struct ctl_server {
	struct netaddr	addr;
	uint16_t	port;
};

struct ctl_resolver {
	struct __res_state	 state;
	bool			 state_ok;
	struct ctl_server	 servers[CTL_DNS_SERVERS_MAX];
	size_t			 nservers;
	int			 timeout_ms;
	char			 describe[CTL_DNS_SERVERS_MAX * (NETADDR_STRLEN + 2)];
};

struct ctl_resolver *
ctl_resolver_new(const struct config *c)
{
	struct ctl_resolver *r = calloc(1, sizeof(*r));
	size_t used = 0;

	if (r == NULL)
		abort();
	r->timeout_ms = (int)c->dns_timeout;
	r->state_ok = res_ninit(&r->state) == 0;
	for (size_t i = 0; i < c->dns_servers.count && r->nservers < CTL_DNS_SERVERS_MAX; i++) {
		struct ctl_server *s = &r->servers[r->nservers];
		const char *item = c->dns_servers.items[i];

		/* The loader accepted each as "addr" or "addr:port" / "[v6]:port". */
		if (netaddr_parse(item, &s->addr) == 0)
			s->port = 53;
		else if (hostport_parse(item, &s->addr, &s->port) == -1)
			continue;
		r->nservers++;
		used += (size_t)snprintf(r->describe + used, sizeof(r->describe) - used, "%s%s", used ? ", " : "", item);
	}
	if (r->nservers == 0)
		snprintf(r->describe, sizeof(r->describe), "the servers in /etc/resolv.conf");
	return r;
}

void
ctl_resolver_free(struct ctl_resolver *r)
{
	if (r == NULL)
		return;
	if (r->state_ok)
		res_nclose(&r->state);
	free(r);
}

const char *
ctl_resolver_describe(const struct ctl_resolver *r)
{
	return r->describe;
}

static int64_t
clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* wait_fd - poll one descriptor until deadline; 1 ready, 0 timed out. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int64_t left;
	int rc;

	do {
		if ((left = deadline - clock_ms()) <= 0)
			return 0;
		rc = poll(&pfd, 1, (int)left);
	} while (rc == -1 && errno == EINTR);
	return rc > 0 ? 1 : 0;
}

/* read_full - exactly len bytes from a TCP socket before deadline; -1 otherwise. */
static int
read_full(int fd, unsigned char *buf, size_t len, int64_t deadline)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n;

		if (!wait_fd(fd, POLLIN, deadline))
			return -1;
		if ((n = read(fd, buf + got, len - got)) <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

/* send_tcp - the query again over TCP (the UDP answer was truncated). */
static int
send_tcp(const struct ctl_server *s, const unsigned char *q, int qlen, unsigned char *ans, int anscap,
    int64_t deadline)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	unsigned char len2[2] = { (unsigned char)(qlen >> 8), (unsigned char)qlen };
	int fd, n = -1;

	netaddr_to_sockaddr(&s->addr, s->port, &ss, &sslen);
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) == -1)
		return -1;
	if ((connect(fd, (struct sockaddr *)&ss, sslen) == 0 || errno == EINPROGRESS) && wait_fd(fd, POLLOUT, deadline) &&
	    send(fd, len2, 2, MSG_NOSIGNAL) == 2 && send(fd, q, (size_t)qlen, MSG_NOSIGNAL) == qlen &&
	    read_full(fd, len2, 2, deadline) == 0) {
		n = (len2[0] << 8) | len2[1];
		if (n > anscap || read_full(fd, ans, (size_t)n, deadline) == -1)
			n = -1;
	}
	close(fd);
	return n;
}

/* send_udp - one query to one server; the answer's length, or -1 (no answer in time). */
static int
send_udp(const struct ctl_server *s, const unsigned char *q, int qlen, unsigned char *ans, int anscap, int timeout_ms)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int64_t deadline = clock_ms() + timeout_ms;
	int fd, n = -1;

	netaddr_to_sockaddr(&s->addr, s->port, &ss, &sslen);
	if ((fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) == -1)
		return -1;
	/* connect: only the server's own datagrams are read. */
	if (connect(fd, (struct sockaddr *)&ss, sslen) == -1 || send(fd, q, (size_t)qlen, 0) != qlen) {
		close(fd);
		return -1;
	}
	while (wait_fd(fd, POLLIN, deadline)) {
		ssize_t got = recv(fd, ans, (size_t)anscap, 0);

		if (got == -1 && errno != EAGAIN && errno != EINTR)
			break;		/* ECONNREFUSED: nothing listens there */
		/* The answer to this query: same id, the QR bit set. */
		if (got < NS_HFIXEDSZ || memcmp(ans, q, 2) != 0 || !(ans[2] & 0x80))
			continue;
		n = (int)got;
		if (ans[2] & 0x02)	/* TC: truncated */
			n = send_tcp(s, q, qlen, ans, anscap, deadline);
		break;
	}
	close(fd);
	return n;
}

/*
 * query - one question; msg is the parsed answer when FOUND (it points
 * into ans). NONE for NXDOMAIN or an answer without records of the type.
 */
static enum ctl_dns_status
query(struct ctl_resolver *r, const char *name, int type, unsigned char *ans, ns_msg *msg)
{
	unsigned char q[NS_PACKETSZ];
	int qlen, n = -1, rcode;

	if (!r->state_ok)
		return CTL_DNS_FAILED;
	if ((qlen = res_nmkquery(&r->state, ns_o_query, name, ns_c_in, type, NULL, 0, NULL, q, sizeof(q))) == -1)
		return CTL_DNS_FAILED;
	if (r->nservers == 0) {
		n = res_nsend(&r->state, q, qlen, ans, CTL_DNS_PACKET_MAX);
	} else {
		for (size_t i = 0; i < r->nservers && n == -1; i++)
			n = send_udp(&r->servers[i], q, qlen, ans, CTL_DNS_PACKET_MAX, r->timeout_ms);
	}
	if (n == -1 || ns_initparse(ans, n, msg) == -1)
		return CTL_DNS_FAILED;
	rcode = ns_msg_getflag(*msg, ns_f_rcode);
	if (rcode == ns_r_nxdomain)
		return CTL_DNS_NONE;
	if (rcode != ns_r_noerror)
		return CTL_DNS_FAILED;
	return ns_msg_count(*msg, ns_s_an) > 0 ? CTL_DNS_FOUND : CTL_DNS_NONE;
}

/* each_answer - call fn for every answer record of type (a CNAME's target included). */
static size_t
each_answer(ns_msg *msg, int type, bool (*fn)(ns_msg *msg, const ns_rr *rr, void *arg), void *arg)
{
	size_t found = 0;

	for (int i = 0; i < ns_msg_count(*msg, ns_s_an); i++) {
		ns_rr rr;

		if (ns_parserr(msg, ns_s_an, i, &rr) == -1)
			break;
		if ((int)ns_rr_type(rr) == type && fn(msg, &rr, arg))
			found++;
	}
	return found;
}

struct collect {
	void	*out;
	size_t	*n;
};

static bool
collect_mx(ns_msg *msg, const ns_rr *rr, void *arg)
{
	struct collect *c = arg;
	struct ctl_mx *mx = (struct ctl_mx *)c->out + *c->n;

	if (*c->n >= CTL_DNS_ANSWERS_MAX || ns_rr_rdlen(*rr) < 3)
		return false;
	mx->pref = ns_get16(ns_rr_rdata(*rr));
	if (dn_expand(ns_msg_base(*msg), ns_msg_end(*msg), ns_rr_rdata(*rr) + 2, mx->host, sizeof(mx->host)) == -1)
		return false;
	(*c->n)++;
	return true;
}

static bool
collect_name(ns_msg *msg, const ns_rr *rr, void *arg)
{
	struct collect *c = arg;
	char (*names)[CTL_DNS_NAME_MAX] = c->out;

	if (*c->n >= CTL_DNS_ANSWERS_MAX ||
	    dn_expand(ns_msg_base(*msg), ns_msg_end(*msg), ns_rr_rdata(*rr), names[*c->n], CTL_DNS_NAME_MAX) == -1)
		return false;
	(*c->n)++;
	return true;
}

static bool
collect_addr(ns_msg *msg, const ns_rr *rr, void *arg)
{
	struct collect *c = arg;
	struct netaddr *a = (struct netaddr *)c->out + *c->n;
	size_t len = ns_rr_rdlen(*rr);

	if (*c->n >= CTL_DNS_ANSWERS_MAX || (len != 4 && len != 16) || len != (ns_rr_type(*rr) == ns_t_a ? 4u : 16u))
		return false;
	memset(a, 0, sizeof(*a));
	a->family = len == 4 ? AF_INET : AF_INET6;
	memcpy(a->bytes, ns_rr_rdata(*rr), len);
	netaddr_normalize(a);
	(*c->n)++;
	return true;
}

enum ctl_dns_status
ctl_resolve_mx(struct ctl_resolver *r, const char *domain, struct ctl_mx *out, size_t *n)
{
	static unsigned char ans[CTL_DNS_PACKET_MAX];
	struct collect c = { out, n };
	enum ctl_dns_status st;
	ns_msg msg;

	*n = 0;
	if ((st = query(r, domain, ns_t_mx, ans, &msg)) != CTL_DNS_FOUND)
		return st;
	return each_answer(&msg, ns_t_mx, collect_mx, &c) ? CTL_DNS_FOUND : CTL_DNS_NONE;
}

enum ctl_dns_status
ctl_resolve_addrs(struct ctl_resolver *r, const char *name, struct netaddr *out, size_t *n)
{
	static unsigned char ans[CTL_DNS_PACKET_MAX];
	static const int types[2] = { ns_t_a, ns_t_aaaa };
	struct collect c = { out, n };
	bool failed = false;

	*n = 0;
	for (int i = 0; i < 2; i++) {
		ns_msg msg;
		enum ctl_dns_status st = query(r, name, types[i], ans, &msg);

		if (st == CTL_DNS_FOUND)
			each_answer(&msg, types[i], collect_addr, &c);
		else if (st == CTL_DNS_FAILED)
			failed = true;
	}
	return *n > 0 ? CTL_DNS_FOUND : failed ? CTL_DNS_FAILED : CTL_DNS_NONE;
}

/* reverse_name - 4.3.2.1.in-addr.arpa, or the ip6.arpa nibbles. */
static void
reverse_name(const struct netaddr *a, char *out, size_t len)
{
	size_t used = 0;

	if (a->family == AF_INET) {
		snprintf(out, len, "%u.%u.%u.%u.in-addr.arpa", a->bytes[3], a->bytes[2], a->bytes[1], a->bytes[0]);
		return;
	}
	for (int i = 15; i >= 0; i--)
		used += (size_t)snprintf(out + used, len - used, "%x.%x.", a->bytes[i] & 0xf, a->bytes[i] >> 4);
	snprintf(out + used, len - used, "ip6.arpa");
}

enum ctl_dns_status
ctl_resolve_ptr(struct ctl_resolver *r, const struct netaddr *a_in, char out[][CTL_DNS_NAME_MAX], size_t *n)
{
	static unsigned char ans[CTL_DNS_PACKET_MAX];
	struct netaddr a = *a_in;
	struct collect c = { out, n };
	char name[CTL_DNS_NAME_MAX];
	enum ctl_dns_status st;
	ns_msg msg;

	*n = 0;
	netaddr_normalize(&a);
	reverse_name(&a, name, sizeof(name));
	if ((st = query(r, name, ns_t_ptr, ans, &msg)) != CTL_DNS_FOUND)
		return st;
	return each_answer(&msg, ns_t_ptr, collect_name, &c) ? CTL_DNS_FOUND : CTL_DNS_NONE;
}

void
ctl_fcrdns(struct ctl_resolver *r, const struct netaddr *a_in, struct ctl_fcrdns *out)
{
	char names[CTL_DNS_ANSWERS_MAX][CTL_DNS_NAME_MAX];
	struct netaddr a = *a_in;
	size_t n;

	memset(out, 0, sizeof(*out));
	netaddr_normalize(&a);
	if ((out->ptr_status = ctl_resolve_ptr(r, &a, names, &n)) != CTL_DNS_FOUND)
		return;
	snprintf(out->name, sizeof(out->name), "%s", names[0]);
	for (size_t i = 0; i < n && out->confirmed[0] == '\0'; i++) {
		struct netaddr fwd[CTL_DNS_ANSWERS_MAX];
		size_t m;

		if (ctl_resolve_addrs(r, names[i], fwd, &m) == CTL_DNS_FAILED)
			out->forward_failed = true;
		for (size_t j = 0; j < m; j++)
			if (netaddr_equal(&fwd[j], &a))
				snprintf(out->confirmed, sizeof(out->confirmed), "%s", names[i]);
	}
}
