#ifndef MXTIER_HTTP_LOCAL_H
#define MXTIER_HTTP_LOCAL_H

/* http_local_start - unsplit: the HTTP server (proxy/http/) on this process's loop, if http_listen is set. */
int	http_local_start(void);
void	http_local_stop(void);

#endif
