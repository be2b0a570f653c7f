#ifndef MXTIER_SERVICE_H
#define MXTIER_SERVICE_H

/*
 * The service manager's side channels, both no-ops outside systemd:
 * readiness notifications (sd_notify, when NOTIFY_SOCKET is set) and
 * whether stderr is the journal (JOURNAL_STREAM names stderr's device and
 * inode), in which case log lines carry a "<N>" syslog priority.
 */
void	service_notify(const char *state);
int	service_stderr_is_journal(void);

#endif
