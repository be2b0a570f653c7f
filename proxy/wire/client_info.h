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
	const char	*tls_version;	/* "TLSv1.3" when the client used STARTTLS, else NULL */
	const char	*tls_cipher;	/* "TLS_AES_256_GCM_SHA384", with tls_version */
};

/* PROXY v2 TLV for a client that used TLS (PP2_TYPE_SSL and its sub-TLVs). */
#define PP2_TYPE_SSL		0x20
#define PP2_CLIENT_SSL		0x01
#define PP2_SUBTYPE_SSL_VERSION	0x21
#define PP2_SUBTYPE_SSL_CIPHER	0x23
#define PP2_TLS_NAME_MAX	64	/* longer version or cipher names are not sent */

/* xtext_encode - RFC 3461 xtext; returns the length, or 0 when dst is too small. */
size_t	client_info_xtext(char *dst, size_t dstlen, const char *src);

/* Each returns the number of bytes written into buf, or 0 if it does not fit. */
size_t	client_info_xclient(char *buf, size_t len, const struct client_identity *id);
size_t	client_info_proxy_v1(char *buf, size_t len, const struct client_identity *id);
/*
 * client_info_proxy_v2 - with id->tls_version set, a PP2_TYPE_SSL TLV
 * follows the addresses: client = PP2_CLIENT_SSL, verify = 1 (no client
 * certificate was asked for), then the version and cipher sub-TLVs.
 * XCLIENT has no standard TLS attribute, so only PROXY v2 carries TLS.
 */
size_t	client_info_proxy_v2(uint8_t *buf, size_t len, const struct client_identity *id);

#endif
