#ifndef MXTIER_RELAY_H
#define MXTIER_RELAY_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;
struct relay;
struct session;

/* Backend leg bounds: stop reading the client while the backend output is above the high mark. */
#define RELAY_OUTPUT_HIGH	(256 * 1024)
#define RELAY_OUTPUT_LOW	(64 * 1024)

/*
 * relay_start - connect to the backend for session s, announce the client,
 * EHLO, then send first_command (a full line with CRLF). The reply to it,
 * or a failure, comes back through session_backend_reply/_failed.
 */
struct relay	*relay_start(struct session *s, const char *first_command, size_t len);
void		 relay_free(struct relay *r);

/* relay_command - send one command line; exactly one reply is expected. */
void		 relay_command(struct relay *r, const char *line, size_t len);
/* relay_data_move - stream len bytes of message data from src (DATA accepted by the backend). */
void		 relay_data_move(struct relay *r, struct evbuffer *src, size_t len);
/* relay_data_end - the end-of-data line was streamed: wait for the final reply. */
void		 relay_data_end(struct relay *r);
/* relay_output_full - the backend leg is above its high mark. */
bool		 relay_output_full(const struct relay *r);
/* relay_quit - polite QUIT then close, detached from the session. */
void		 relay_quit(struct relay *r);

#endif
