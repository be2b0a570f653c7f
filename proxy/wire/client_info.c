#include "client_info.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

size_t
client_info_xtext(char *dst, size_t dstlen, const char *src)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
		bool plain = *p >= 33 && *p <= 126 && *p != '+' && *p != '=';

		if (o + (plain ? 1 : 3) + 1 > dstlen)
			return 0;
		if (plain) {
			dst[o++] = (char)*p;
		} else {
			dst[o++] = '+';
			dst[o++] = hex[*p >> 4];
			dst[o++] = hex[*p & 15];
		}
	}
	if (o + 1 > dstlen)
		return 0;
	dst[o] = '\0';
	return o;
}

size_t
client_info_xclient(char *buf, size_t len, const struct client_identity *id)
{
	char addr[NETADDR_STRLEN], helo[3 * 256 + 1], name[3 * 256 + 1];
	int n;

	netaddr_format(&id->client, addr, sizeof(addr));
	if (id->helo && id->helo[0]) {
		if (client_info_xtext(helo, sizeof(helo), id->helo) == 0)
			return 0;
	} else {
		snprintf(helo, sizeof(helo), "[UNAVAILABLE]");
	}
	if (id->rdns_name && id->rdns_name[0]) {
		if (client_info_xtext(name, sizeof(name), id->rdns_name) == 0)
			return 0;
	} else {
		snprintf(name, sizeof(name), "[UNAVAILABLE]");
	}
	n = snprintf(buf, len, "XCLIENT ADDR=%s%s PORT=%u NAME=%s HELO=%s PROTO=%s\r\n",
	    id->client.family == AF_INET6 ? "IPV6:" : "", addr, id->client_port, name, helo,
	    id->esmtp ? "ESMTP" : "SMTP");
	return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

size_t
client_info_proxy_v1(char *buf, size_t len, const struct client_identity *id)
{
	char src[NETADDR_STRLEN], dst[NETADDR_STRLEN];
	int n;

	if (id->client.family != id->server.family)
		return 0;
	n = snprintf(buf, len, "PROXY %s %s %s %u %u\r\n", id->client.family == AF_INET ? "TCP4" : "TCP6",
	    netaddr_format(&id->client, src, sizeof(src)), netaddr_format(&id->server, dst, sizeof(dst)),
	    id->client_port, id->server_port);
	return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

/* put_tlv - type, 16-bit length, value; returns the octets written. */
static size_t
put_tlv(uint8_t *p, uint8_t type, const void *value, size_t vlen)
{
	p[0] = type;
	p[1] = (uint8_t)(vlen >> 8);
	p[2] = (uint8_t)(vlen & 0xff);
	memcpy(p + 3, value, vlen);
	return 3 + vlen;
}

size_t
client_info_proxy_v2(uint8_t *buf, size_t len, const struct client_identity *id)
{
	static const uint8_t signature[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };
	size_t alen = id->client.family == AF_INET ? 4 : 16;
	size_t body = 2 * alen + 4, total, vlen = 0, clen = 0, ssl_len = 0;
	uint16_t port;

	if (id->tls_version && id->tls_version[0]) {
		vlen = strlen(id->tls_version);
		clen = id->tls_cipher ? strlen(id->tls_cipher) : 0;
		if (vlen > PP2_TLS_NAME_MAX || clen > PP2_TLS_NAME_MAX)
			return 0;
		/* client (1) + verify (4) + version sub-TLV + cipher sub-TLV when known */
		ssl_len = 5 + 3 + vlen + (clen ? 3 + clen : 0);
		body += 3 + ssl_len;
	}
	total = 16 + body;
	if (id->client.family != id->server.family || len < total)
		return 0;
	memcpy(buf, signature, 12);
	buf[12] = 0x21;					/* version 2, PROXY command */
	buf[13] = id->client.family == AF_INET ? 0x11 : 0x21;	/* TCP over IPv4 / IPv6 */
	buf[14] = (uint8_t)(body >> 8);
	buf[15] = (uint8_t)(body & 0xff);
	memcpy(buf + 16, id->client.bytes, alen);
	memcpy(buf + 16 + alen, id->server.bytes, alen);
	port = htons(id->client_port);
	memcpy(buf + 16 + 2 * alen, &port, 2);
	port = htons(id->server_port);
	memcpy(buf + 18 + 2 * alen, &port, 2);
	if (ssl_len) {
		uint8_t *p = buf + 20 + 2 * alen;
		static const uint8_t verify_none[4] = { 0, 0, 0, 1 };	/* non-zero: no verified client certificate */

		p[0] = PP2_TYPE_SSL;
		p[1] = (uint8_t)(ssl_len >> 8);
		p[2] = (uint8_t)(ssl_len & 0xff);
		p[3] = PP2_CLIENT_SSL;
		memcpy(p + 4, verify_none, 4);
		p += 8;
		p += put_tlv(p, PP2_SUBTYPE_SSL_VERSION, id->tls_version, vlen);
		if (clen)
			put_tlv(p, PP2_SUBTYPE_SSL_CIPHER, id->tls_cipher, clen);
	}
	return total;
}
