#ifndef MXTIER_SERVICE_H
#define MXTIER_SERVICE_H

/*
 * service_notify - a readiness notification to the service manager
 * (sd_notify(3) state line); a no-op outside systemd (no NOTIFY_SOCKET).
 * Whether stderr is the journal is log.c's business (log_to_journal).
 */
void	service_notify(const char *state);

#endif
