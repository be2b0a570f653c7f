/*
 * service.c - what mxtierd tells systemd: READY=1 once the listeners are
 * open, RELOADING=1 ... READY=1 around a SIGHUP reload, STOPPING=1 at a
 * stop (the unit is Type=notify). Any process of the service may send
 * (NotifyAccess=all): in a split the engine knows when it listens, the
 * parent when a reload begins.
 */
#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

/* service_notify - one sd_notify(3) state line; ignored without a notify socket. */
void
service_notify(const char *state)
{
	/* unset_environment = 0: both processes of a split send, each from its own copy. */
	(void)sd_notify(0, state);
}

/*
 * service_stderr_is_journal - 1 when stderr is the journal's stream: the
 * variable alone is not enough (a child may inherit it with stderr
 * redirected), so its "DEV:INODE" must be stderr's own.
 */
int
service_stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (e == NULL || sscanf(e, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) == -1)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}
