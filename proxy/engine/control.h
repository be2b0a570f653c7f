#ifndef MXTIER_CONTROL_H
#define MXTIER_CONTROL_H

/*
 * The control socket mxtierctl talks to: one request line, a reply that
 * starts with "ok" or "error: ...", then data lines; the daemon closes.
 */
int	control_start(void);			/* accept on mxd->base */
void	control_stop(void);

struct evbuffer;
/* control_execute - one request line (modified in place), its answer appended to out. */
void	control_execute(char *line, struct evbuffer *out);
/* control_status - the "status" answer (control_status.c). */
void	control_status(struct evbuffer *out);
/* control_status_listen - take the privileged side's counters as they come. */
void	control_status_listen(void);

#endif
