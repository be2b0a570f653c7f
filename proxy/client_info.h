#ifndef MXTIER_CLIENT_INFO_H
#define MXTIER_CLIENT_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netaddr.h"

/*
 * Announcing the real client to the backend. Every value a client chose
 * (its HELO) is xtext-encoded, so no byte it sends can end the command or
 * add an attribute.
 */

struct client_identity {
	struct netaddr	client;
	uint16_t	client_port;
	struct netaddr	server;		/* the tier address it connected to */
	uint16_t	server_port;
	const char	*helo;		/* NULL or "" when none yet */
	const char	*rdns_name;	/* NULL when unknown */
	bool		esmtp;
};

/* xtext_encode - RFC 3461 xtext; returns the length, or 0 when dst is too small. */
size_t	client_info_xtext(char *dst, size_t dstlen, const char *src);

/* Each returns the number of bytes written into buf, or 0 if it does not fit. */
size_t	client_info_xclient(char *buf, size_t len, const struct client_identity *id);
size_t	client_info_proxy_v1(char *buf, size_t len, const struct client_identity *id);
size_t	client_info_proxy_v2(uint8_t *buf, size_t len, const struct client_identity *id);

#endif
