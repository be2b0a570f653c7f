/*
 * fuzz_client_info.c - libFuzzer harness for the client-info encoders
 * (proxy/wire/client_info.c): xtext, the XCLIENT command and the PROXY v1/v2
 * headers that tell the backend who the real client is. The HELO name
 * is the client's choice, so no byte of it may end the command, add an
 * attribute or change the header's framing.
 *
 * Input: byte 0 holds flags (bit 0 IPv6, bit 1 ESMTP, bit 2 a TLS
 * session, bit 3 the server address of the other family, bit 4 no HELO,
 * bit 5 no rDNS name), byte 1 the xtext output size to try, bytes 2-17
 * the client address, 18-33 the server address, 34-37 the two ports,
 * then HELO, rDNS name, TLS version and TLS cipher separated by NULs.
 *
 * Invariants checked (abort on violation):
 *  - xtext output is 33..126 only, '+' only as "+XX" (upper-case hex),
 *    no '=', decodes back to the input, fits the size given or is 0
 *    exactly when the encoding would not fit;
 *  - the XCLIENT line is "XCLIENT ADDR= PORT= NAME= HELO= PROTO=" in
 *    that order, one CRLF at its end and no other CR, LF or NUL, and its
 *    NAME and HELO decode back to the values given;
 *  - the PROXY v1 line is at most 107 octets, one CRLF, and its addresses
 *    and ports parse back to the ones given;
 *  - the PROXY v2 header has the signature, the length field matches the
 *    octets returned, addresses and ports read back, and every TLV (and
 *    the SSL sub-TLVs) lies inside the header and carries the TLS names.
 *
 * Seeds: fuzz/corpus/client_info/.
 */
#include <arpa/inet.h>
#include <string.h>

#include "client_info.h"
#include "fuzz.h"

#define HEADER_LEN	38

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* xtext_decode - strict decoder for what client_info_xtext writes; -1 if it is not well-formed. */
static long
xtext_decode(const char *src, size_t n, char *out, size_t outlen)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];
		int hi, lo;

		if (c < 33 || c > 126 || c == '=' || o + 1 >= outlen)
			return -1;
		if (c != '+') {
			out[o++] = (char)c;
			continue;
		}
		if (i + 2 >= n)
			return -1;
		hi = hexval(src[i + 1]);
		lo = hexval(src[i + 2]);
		if (hi < 0 || lo < 0)
			return -1;
		out[o++] = (char)(hi * 16 + lo);
		i += 2;
	}
	out[o] = '\0';
	return (long)o;
}

static size_t
xtext_length(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += (*s >= 33 && *s <= 126 && *s != '+' && *s != '=') ? 1 : 3;
	return n;
}

static void
check_xtext(const char *src, size_t dstlen)
{
	char dst[1024], back[1024];
	size_t n, want = xtext_length(src);

	if (dstlen > sizeof(dst))
		dstlen = sizeof(dst);
	n = client_info_xtext(dst, dstlen, src);
	if (want + 1 > dstlen) {
		FUZZ_CHECK(n == 0, "xtext of %zu octets written into %zu", want, dstlen);
		return;
	}
	FUZZ_CHECK(n == want, "xtext length %zu, expected %zu", n, want);
	FUZZ_CHECK(dst[n] == '\0', "xtext not NUL-terminated");
	FUZZ_CHECK(xtext_decode(dst, n, back, sizeof(back)) == (long)strlen(src) && strcmp(back, src) == 0,
	    "xtext does not decode back");
}

/* check_attribute - "NAME=value": the value decodes to want (or is [UNAVAILABLE]). */
static void
check_attribute(const char *tok, size_t n, const char *name, const char *want, bool xtext)
{
	size_t nl = strlen(name);
	char back[1024];

	FUZZ_CHECK(n > nl && memcmp(tok, name, nl) == 0 && tok[nl] == '=', "attribute %s missing", name);
	tok += nl + 1;
	n -= nl + 1;
	if (!xtext)
		return;
	if (want == NULL || want[0] == '\0') {
		FUZZ_CHECK(n == 13 && memcmp(tok, "[UNAVAILABLE]", 13) == 0, "%s without a value", name);
		return;
	}
	FUZZ_CHECK(xtext_decode(tok, n, back, sizeof(back)) >= 0 && strcmp(back, want) == 0,
	    "%s does not decode back", name);
}

static void
check_xclient(const struct client_identity *id)
{
	static const char *const names[] = { "ADDR", "PORT", "NAME", "HELO", "PROTO" };
	char buf[4096];
	size_t n = client_info_xclient(buf, sizeof(buf), id);
	const char *p, *end;
	size_t count = 0;

	if (n == 0)
		return;
	FUZZ_CHECK(n < sizeof(buf) && buf[n] == '\0', "XCLIENT line overruns");
	FUZZ_CHECK(n >= 2 && buf[n - 2] == '\r' && buf[n - 1] == '\n', "XCLIENT line not CRLF-ended");
	for (size_t i = 0; i + 2 < n; i++)
		FUZZ_CHECK((unsigned char)buf[i] >= 32 && (unsigned char)buf[i] <= 126,
		    "byte 0x%02x in the XCLIENT line", (unsigned char)buf[i]);
	FUZZ_CHECK(memcmp(buf, "XCLIENT ", 8) == 0, "not an XCLIENT line");
	for (p = buf + 8, end = buf + n - 2; p < end; count++) {
		const char *sp = memchr(p, ' ', (size_t)(end - p));
		size_t tl = sp ? (size_t)(sp - p) : (size_t)(end - p);

		FUZZ_CHECK(count < 5, "an extra XCLIENT attribute");
		check_attribute(p, tl, names[count], count == 2 ? id->rdns_name : id->helo,
		    count == 2 || count == 3);
		p += tl + (sp ? 1 : 0);
	}
	FUZZ_CHECK(count == 5, "%zu XCLIENT attributes", count);
}

static void
check_proxy_v1(const struct client_identity *id)
{
	char buf[256], proto[8], a[64], b[64];
	unsigned pa, pb;
	struct netaddr na, nb;
	size_t n = client_info_proxy_v1(buf, sizeof(buf), id);
	int af = id->client.family;

	if (id->client.family != id->server.family) {
		FUZZ_CHECK(n == 0, "PROXY v1 across address families");
		return;
	}
	FUZZ_CHECK(n > 0 && n <= 107, "PROXY v1 line of %zu octets", n);
	FUZZ_CHECK(buf[n - 2] == '\r' && buf[n - 1] == '\n' && memchr(buf, '\n', n - 1) == NULL &&
	    memchr(buf, '\r', n - 2) == NULL, "PROXY v1 framing");
	buf[n - 2] = '\0';
	FUZZ_CHECK(sscanf(buf, "PROXY %7s %63s %63s %u %u", proto, a, b, &pa, &pb) == 5, "PROXY v1 fields: %s", buf);
	FUZZ_CHECK(strcmp(proto, af == AF_INET ? "TCP4" : "TCP6") == 0, "PROXY v1 protocol %s", proto);
	memset(&na, 0, sizeof(na));
	memset(&nb, 0, sizeof(nb));
	FUZZ_CHECK(inet_pton(af, a, na.bytes) == 1 && inet_pton(af, b, nb.bytes) == 1, "PROXY v1 addresses: %s", buf);
	FUZZ_CHECK(memcmp(na.bytes, id->client.bytes, af == AF_INET ? 4 : 16) == 0 &&
	    memcmp(nb.bytes, id->server.bytes, af == AF_INET ? 4 : 16) == 0, "PROXY v1 addresses differ: %s", buf);
	FUZZ_CHECK(pa == id->client_port && pb == id->server_port, "PROXY v1 ports differ: %s", buf);
}

static void
check_proxy_v2(const struct client_identity *id)
{
	uint8_t buf[512];
	size_t n = client_info_proxy_v2(buf, sizeof(buf), id), alen, pos;
	bool tls = id->tls_version && id->tls_version[0], seen_ssl = false;

	if (n == 0)
		return;
	FUZZ_CHECK(id->client.family == id->server.family, "PROXY v2 across address families");
	FUZZ_CHECK(n >= 16 && n <= sizeof(buf), "PROXY v2 of %zu octets", n);
	FUZZ_CHECK(memcmp(buf, "\r\n\r\n\0\r\nQUIT\n", 12) == 0 && buf[12] == 0x21, "PROXY v2 signature");
	FUZZ_CHECK((size_t)(buf[14] << 8 | buf[15]) == n - 16, "PROXY v2 length field %u for %zu",
	    buf[14] << 8 | buf[15], n);
	alen = id->client.family == AF_INET ? 4 : 16;
	FUZZ_CHECK(buf[13] == (alen == 4 ? 0x11 : 0x21), "PROXY v2 family byte");
	FUZZ_CHECK(n >= 16 + 2 * alen + 4, "PROXY v2 too short for its addresses");
	FUZZ_CHECK(memcmp(buf + 16, id->client.bytes, alen) == 0 && memcmp(buf + 16 + alen, id->server.bytes, alen) == 0,
	    "PROXY v2 addresses");
	FUZZ_CHECK((buf[16 + 2 * alen] << 8 | buf[17 + 2 * alen]) == id->client_port &&
	    (buf[18 + 2 * alen] << 8 | buf[19 + 2 * alen]) == id->server_port, "PROXY v2 ports");
	for (pos = 20 + 2 * alen; pos < n;) {
		size_t tl;

		FUZZ_CHECK(pos + 3 <= n, "TLV header past the end");
		tl = (size_t)(buf[pos + 1] << 8 | buf[pos + 2]);
		FUZZ_CHECK(pos + 3 + tl <= n, "TLV value past the end");
		if (buf[pos] == 0x20) {		/* PP2_TYPE_SSL: client, verify, sub-TLVs */
			size_t sub = pos + 8, end = pos + 3 + tl;
			bool version_ok = false;

			FUZZ_CHECK(tls && !seen_ssl, "SSL TLV without TLS, or twice");
			FUZZ_CHECK(tl >= 5 && (buf[pos + 3] & 0x01), "SSL TLV client field");
			seen_ssl = true;
			while (sub < end) {
				size_t sl;

				FUZZ_CHECK(sub + 3 <= end, "sub-TLV header past the SSL TLV");
				sl = (size_t)(buf[sub + 1] << 8 | buf[sub + 2]);
				FUZZ_CHECK(sub + 3 + sl <= end, "sub-TLV value past the SSL TLV");
				if (buf[sub] == 0x21)
					version_ok = sl == strlen(id->tls_version) &&
					    memcmp(buf + sub + 3, id->tls_version, sl) == 0;
				if (buf[sub] == 0x23 && id->tls_cipher)
					FUZZ_CHECK(sl == strlen(id->tls_cipher) &&
					    memcmp(buf + sub + 3, id->tls_cipher, sl) == 0, "cipher sub-TLV");
				sub += 3 + sl;
			}
			FUZZ_CHECK(version_ok, "version sub-TLV");
		}
		pos += 3 + tl;
	}
	FUZZ_CHECK(pos == n, "TLVs do not end at the header's end");
	FUZZ_CHECK(!tls || seen_ssl, "TLS session without an SSL TLV");
}

/* next_string - the next NUL-separated field of the input (always NUL-terminated in storage). */
static const char *
next_string(const char **p, const char *end, char *storage, size_t cap)
{
	size_t n = 0;

	while (*p < end && **p != '\0' && n + 1 < cap)
		storage[n++] = *(*p)++;
	while (*p < end && **p != '\0')
		(*p)++;
	if (*p < end)
		(*p)++;
	storage[n] = '\0';
	return storage;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char helo[512], name[512], version[128], cipher[128];
	struct client_identity id;
	const char *p = (const char *)data + HEADER_LEN, *end = (const char *)data + size;
	uint8_t flags;

	if (size < HEADER_LEN)
		return 0;
	flags = data[0];
	memset(&id, 0, sizeof(id));
	id.client.family = flags & 1 ? AF_INET6 : AF_INET;
	id.server.family = (flags & 8) ? (id.client.family == AF_INET ? AF_INET6 : AF_INET) : id.client.family;
	memcpy(id.client.bytes, data + 2, 16);
	memcpy(id.server.bytes, data + 18, 16);
	if (id.client.family == AF_INET)
		memset(id.client.bytes + 4, 0, 12);
	if (id.server.family == AF_INET)
		memset(id.server.bytes + 4, 0, 12);
	id.client_port = (uint16_t)(data[34] << 8 | data[35]);
	id.server_port = (uint16_t)(data[36] << 8 | data[37]);
	id.esmtp = flags & 2;
	/* HELO as the session keeps it: at most 255 octets (longer is refused with 501). */
	id.helo = next_string(&p, end, helo, 256);
	id.rdns_name = next_string(&p, end, name, 256);
	next_string(&p, end, version, sizeof(version));
	next_string(&p, end, cipher, sizeof(cipher));
	if (flags & 4) {
		id.tls_version = version;
		id.tls_cipher = cipher[0] ? cipher : NULL;
	}
	if (flags & 16)
		id.helo = NULL;
	if (flags & 32)
		id.rdns_name = NULL;

	check_xtext(helo, data[1] * 4u + 1);
	check_xtext(name, 3 * 256 + 1);
	check_xclient(&id);
	check_proxy_v1(&id);
	check_proxy_v2(&id);
	return 0;
}
