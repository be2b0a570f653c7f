#ifndef MXTIER_CONTROL_H
#define MXTIER_CONTROL_H

/*
 * The control socket mxtierctl talks to: one request line, a reply that
 * starts with "ok" or "error: ...", then data lines; the daemon closes.
 */
int	control_open(const char *path);	/* bind before the split; 0 when no path */
int	control_start(void);			/* accept on mxd->base */
void	control_stop(void);
void	control_close_inherited(void);		/* the privileged parent's copy */
void	control_unlink(void);

#endif
