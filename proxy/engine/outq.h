#ifndef MXTIER_OUTQ_H
#define MXTIER_OUTQ_H

#include <stdbool.h>

struct bufferevent;
struct event;

/*
 * outq - write a bufferevent's output ourselves, once per pass of the
 * loop, instead of arming EV_WRITE for every reply: a reply or a forwarded
 * command leaves in one send() with no epoll changes and no extra wake-up.
 * Only a write that does not complete (a slow reader) falls back to
 * libevent's EV_WRITE, whose write callback then reports the drain.
 *
 * On a TLS bufferevent the bytes must go through OpenSSL: the flush enables
 * EV_WRITE and the bufferevent writes all that the pass queued as one batch
 * of records; its write callback reports the drain as above. Between
 * flushes EV_WRITE stays off, so a reply of five lines is not five records.
 */
struct outq {
	struct bufferevent	*bev;
	struct event		*flush;
	void			(*drained)(void *arg);	/* output empty after a flush; may free the owner */
	void			*arg;
};

int	outq_init(struct outq *q, struct bufferevent *bev, void (*drained)(void *), void *arg);
/* outq_kick - output was added: flush it at the end of this loop pass. */
void	outq_kick(struct outq *q);
/* outq_rebind - the owner replaced its bufferevent (STARTTLS); it disables EV_WRITE after the handshake. */
void	outq_rebind(struct outq *q, struct bufferevent *bev);
void	outq_free(struct outq *q);

#endif
