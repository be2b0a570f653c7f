/*
 * priv_split.c - privilege separation starts here, in the process root
 * started: is `user` an unprivileged account, and the fork into the
 * privileged parent (priv_parent.c) and the SMTP engine (priv_engine.c),
 * with the signals both handle held back until each has its handlers.
 */
#include "priv_internal.h"

#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

int
priv_check_user(const struct config *c)
{
	char err[512];

	if (config_check_user(c, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxtierd: %s\n", err);
		return -1;
	}
	return 0;
}

enum priv_role
priv_start(struct config *c)
{
	struct passwd *pw;
	int chan[2], fds[2];
	pid_t pid, parent;

	if (geteuid() != 0 || c->user[0] == '\0') {
		if (geteuid() == 0)
			log_warn("privsep: off (user is empty): the SMTP engine runs as root");
		priv.role = PRIV_ROLE_SINGLE;
		return priv.role;
	}
	if (priv_check_user(c) == -1 || (pw = getpwnam(c->user)) == NULL)
		exit(1);
	priv.uid = pw->pw_uid;
	priv.gid = pw->pw_gid;
	snprintf(priv.user, sizeof(priv.user), "%s", c->user);
	if (strstr(c->database, "password=") != NULL)
		log_warn("privsep: database holds password=; prefer passfile= naming a file only root reads "
		    "(the engine never gets the conninfo either way)");
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan) == -1 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) == -1)
		fatalx("privsep: socketpair: %s", strerror(errno));
	/*
	 * Signals wait (blocked) until each process has its handlers: the
	 * engine may answer on a port before the parent's loop is set up, and
	 * a SIGHUP then must not kill the parent by its default action.
	 */
	priv_signals_hold();
	parent = getpid();	/* before fork: getppid() in the child would already see a reaper if we died */
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == -1)
		fatalx("privsep: fork: %s", strerror(errno));
	if (pid > 0) {
		close(chan[1]);
		close(fds[1]);
		priv_parent_run(c, pid, chan[0], fds[0]);
	}
	close(chan[0]);
	close(fds[0]);
	priv_engine_begin(c, parent, chan[1], fds[1]);
	/* From this frame, as the parser's stack lies below it. */
	priv_scrub_stack();
	return priv.role;
}
