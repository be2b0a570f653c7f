#ifndef MXTIER_NETADDR_H
#define MXTIER_NETADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* An IP address, family AF_INET or AF_INET6, bytes in network order. */
struct netaddr {
	int	family;
	uint8_t	bytes[16];	/* 4 used for AF_INET */
};

struct cidr {
	struct netaddr	addr;	/* masked to prefix_len */
	unsigned	prefix_len;
};

/* A bounded list of networks; small, scanned linearly. */
#define CIDR_LIST_MAX 1024
struct cidr_list {
	size_t		count;
	struct cidr	*items;
};

#define NETADDR_STRLEN 64	/* "[v6]:port" fits */

int	 netaddr_parse(const char *text, struct netaddr *out);
int	 netaddr_from_sockaddr(const struct sockaddr *sa, struct netaddr *out, uint16_t *port);
void	 netaddr_to_sockaddr(const struct netaddr *a, uint16_t port, struct sockaddr_storage *ss, socklen_t *len);
void	 netaddr_normalize(struct netaddr *a);
const char *netaddr_format(const struct netaddr *a, char *buf, size_t len);
bool	 netaddr_equal(const struct netaddr *a, const struct netaddr *b);
void	 netaddr_mask(struct netaddr *a, unsigned prefix_len);

/* Key used to count sessions per client: the IPv4 address or the IPv6 /64. */
void	 netaddr_client_key(const struct netaddr *a, struct netaddr *key);

int	 cidr_parse(const char *text, struct cidr *out);
bool	 cidr_contains(const struct cidr *c, const struct netaddr *a);
bool	 cidr_list_contains(const struct cidr_list *l, const struct netaddr *a);
void	 cidr_list_clear(struct cidr_list *l);

/* "1.2.3.4:25" or "[::1]:25"; port required. */
int	 hostport_parse(const char *text, struct netaddr *addr, uint16_t *port);

#endif
