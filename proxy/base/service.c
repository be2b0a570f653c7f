/*
 * service.c - what mxtierd tells systemd: READY=1 once the listeners are
 * open, RELOADING=1 ... READY=1 around a SIGHUP reload, STOPPING=1 at a
 * stop (the unit is Type=notify). Any process of the service may send
 * (NotifyAccess=all): in a split the engine knows when it listens, the
 * parent when a reload begins.
 */
#include "service.h"

#include <systemd/sd-daemon.h>

/* service_notify - one sd_notify(3) state line; ignored without a notify socket. */
void
service_notify(const char *state)
{
	/* unset_environment = 0: both processes of a split send, each from its own copy. */
	(void)sd_notify(0, state);
}
