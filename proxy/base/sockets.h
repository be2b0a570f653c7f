#ifndef MXTIER_SOCKETS_H
#define MXTIER_SOCKETS_H

#include <stdbool.h>
#include <stdint.h>

#include "netaddr.h"

/* socket_listen_tcp - bind and listen (IP_TRANSPARENT when asked); -1 with errno. */
int		 socket_listen_tcp(const struct netaddr *addr, uint16_t port, bool transparent);
/* socket_transparent_client - IP_TRANSPARENT socket bound to addr, for the backend leg; -1 with errno. */
int		 socket_transparent_client(const struct netaddr *addr);

/* The control socket file: bound before the split (mode 0600), 0 when path is empty. */
int		 control_socket_open(const char *path);
int		 control_socket_take(void);
const char	*control_socket_path(void);
void		 control_socket_close_inherited(void);
void		 control_socket_unlink(void);

#endif
