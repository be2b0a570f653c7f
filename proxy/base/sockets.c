/*
 * sockets.c - the sockets mxtierd makes, whichever process makes them: the
 * tier listeners and the backend socket bound to a client's address (in a
 * privilege split the parent makes both, since they may need privilege),
 * and the control socket file (bound before the split; the parent removes
 * it at the end). No event loop, no session: plain system calls.
 */
#include "sockets.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

#define LISTEN_BACKLOG	1024

static char control_path[108];
static int control_fd = -1;	/* bound before the split, taken by the engine's loop */
static ino_t control_inode;	/* ours: a successor's socket at the same path is left alone */

/*
 * socket_listen_tcp - a listening socket for one tier address. In
 * transparent mode it is IP_TRANSPARENT, so it can own a tier address that
 * is not local: TPROXY hands it the connections, and getsockname() on an
 * accepted socket still says which tier the client wanted.
 */
int
socket_listen_tcp(const struct netaddr *addr, uint16_t port, bool transparent)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int fd, one = 1;

	netaddr_to_sockaddr(addr, port, &ss, &sslen);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
		goto fail;
	if (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
		goto fail;
	if (transparent) {
		int rc = ss.ss_family == AF_INET ? setsockopt(fd, IPPROTO_IP, IP_TRANSPARENT, &one, sizeof(one)) :
		    setsockopt(fd, IPPROTO_IPV6, IPV6_TRANSPARENT, &one, sizeof(one));

		if (rc == -1)
			goto fail;
	}
	if (bind(fd, (struct sockaddr *)&ss, sslen) == -1 || listen(fd, LISTEN_BACKLOG) == -1)
		goto fail;
	return fd;
fail:
	{
		int saved = errno;

		close(fd);
		errno = saved;
	}
	return -1;
}

/* socket_transparent_client - an unconnected socket bound to a client's (non-local) address. */
int
socket_transparent_client(const struct netaddr *client)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int fd, one = 1;

	netaddr_to_sockaddr(client, 0, &ss, &sslen);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if ((ss.ss_family == AF_INET ? setsockopt(fd, IPPROTO_IP, IP_TRANSPARENT, &one, sizeof(one)) :
	    setsockopt(fd, IPPROTO_IPV6, IPV6_TRANSPARENT, &one, sizeof(one))) == -1 ||
	    bind(fd, (struct sockaddr *)&ss, sslen) == -1) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/*
 * control_socket_open - bind the control socket (0600, so only root reaches it) before the
 * split: the engine accepts on it without the right to create it, and the
 * privileged parent, which may remove it, knows which inode is ours.
 */
int
control_socket_open(const char *path)
{
	struct sockaddr_un sun;
	struct stat st;
	mode_t old;
	int fd;

	if (path == NULL || path[0] == '\0')
		return 0;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	snprintf(control_path, sizeof(control_path), "%s", path);
	unlink(path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		goto fail;
	old = umask(077);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		umask(old);
		goto fail;
	}
	umask(old);
	if (listen(fd, 16) == -1)
		goto fail;
	if (stat(path, &st) == 0)
		control_inode = st.st_ino;
	control_fd = fd;
	return 0;
fail:
	log_warn("control socket %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/* control_socket_take - the bound control socket for an event loop to accept on; -1 when none. */
int
control_socket_take(void)
{
	int fd = control_fd;

	control_fd = -1;
	return fd;
}

const char *
control_socket_path(void)
{
	return control_path;
}

/* control_socket_close_inherited - a process that does not serve it closes its copy. */
void
control_socket_close_inherited(void)
{
	if (control_fd >= 0)
		close(control_fd);
	control_fd = -1;
}

/* control_socket_unlink - remove our socket file, never a successor's at the same path. */
void
control_socket_unlink(void)
{
	struct stat st;

	if (control_path[0] != '\0' && stat(control_path, &st) == 0 && st.st_ino == control_inode)
		unlink(control_path);
}
