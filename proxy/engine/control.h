#ifndef MXTIER_CONTROL_H
#define MXTIER_CONTROL_H

/*
 * The control socket mxtierctl talks to: one request line, a reply that
 * starts with "ok" or "error: ...", then data lines; the daemon closes.
 */
int	control_start(void);			/* accept on mxd->base */
void	control_stop(void);

#endif
