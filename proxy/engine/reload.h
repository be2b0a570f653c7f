#ifndef MXTIER_RELOAD_H
#define MXTIER_RELOAD_H

#include <event2/util.h>

/*
 * The configuration reload (reload.c). The operator's reload with its
 * outcome is daemon_reload_request (daemon.h).
 */
void	reload_signal_cb(evutil_socket_t sig, short what, void *arg);	/* SIGHUP on mxd->base */
void	reload_listen(void);	/* the privileged side's answers: the new text, or a refusal */

#endif
