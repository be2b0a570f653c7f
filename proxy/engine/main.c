/*
 * main.c - mxtierd: command line, the event loop, signals (SIGHUP reload,
 * SIGTERM/SIGINT graceful stop, SIGUSR1 counters). Started as root with a
 * `user`, the process splits first (proxy/privsep/priv_split.c): what follows priv_start
 * is the SMTP engine, which drops to that user before its loop runs.
 */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client_table.h"
#include "config.h"
#include "control.h"
#include "db.h"
#include "daemon.h"
#include "dns.h"
#include "history.h"
#include "http_local.h"
#include "kernel.h"
#include "listener.h"
#include "log.h"
#include "relay.h"
#include "priv.h"
#include "reload.h"
#include "service.h"
#include "session.h"
#include "sockets.h"

static struct event *shutdown_timer;
static struct event *exit_check_timer;

static void
usage(void)
{
	fprintf(stderr, "usage: mxtierd [-c FILE] [-t] [-n] [-v]\n"
	    "  -c FILE  configuration file (default " MXTIER_CONFIG_PATH ")\n"
	    "  -t       check the configuration and exit\n"
	    "  -n       print the effective settings and exit\n"
	    "  -v       verbose: trace state transitions\n");
	exit(2);
}

static void
exit_check_cb(evutil_socket_t fd, short what, void *arg)
{
	if (mxd->active_sessions == 0)
		event_base_loopexit(mxd->base, NULL);
}

static void
shutdown_grace_over_cb(evutil_socket_t fd, short what, void *arg)
{
	log_info("shutdown grace over: closing %zu sessions", mxd->active_sessions);
	session_shutdown_all();
	/* Closing sessions linger at most SESSION_CLOSE_LINGER_MS for their last reply. */
	struct timeval tv = { SESSION_CLOSE_LINGER_MS / 1000 + 1, 0 };
	event_base_loopexit(mxd->base, &tv);
}

static void
shutdown_cb(evutil_socket_t sig, short what, void *arg)
{
	struct timeval grace = { mxd->config->shutdown_grace / 1000, (mxd->config->shutdown_grace % 1000) * 1000 };
	struct timeval poll = { 0, 100 * 1000 };

	if (mxd->draining) {
		log_info("second stop signal: exiting now");
		event_base_loopexit(mxd->base, NULL);
		return;
	}
	mxd->draining = true;
	service_notify("STOPPING=1");
	listeners_close_all();
	relay_pool_flush("stopping");
	health_stop();
	shed_stop();
	log_info("stopping: no new connections, %zu sessions finishing (grace %llds)", mxd->active_sessions,
	    (long long)(mxd->config->shutdown_grace / 1000));
	shutdown_timer = evtimer_new(mxd->base, shutdown_grace_over_cb, NULL);
	evtimer_add(shutdown_timer, &grace);
	exit_check_timer = event_new(mxd->base, -1, EV_PERSIST, exit_check_cb, NULL);
	evtimer_add(exit_check_timer, &poll);
}

static void
stats_cb(evutil_socket_t sig, short what, void *arg)
{
	stats_log(&mxd->stats);
}

int
main(int argc, char **argv)
{
	const char *path = MXTIER_CONFIG_PATH;
	bool check_only = false, print_only = false;
	char err[1024];
	struct event *sig_hup, *sig_term, *sig_int, *sig_usr1;
	int ch;

	while ((ch = getopt(argc, argv, "c:tnvh")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 't':
			check_only = true;
			break;
		case 'n':
			print_only = true;
			break;
		case 'v':
			log_verbose = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	mxd->config = priv_config_load(path, err, sizeof(err));
	if (mxd->config == NULL) {
		/* Under systemd an error priority, so `journalctl -p warning` shows why it did not start. */
		fprintf(stderr, "%smxtierd: %s\n", log_to_journal() ? "<3>" : "", err);
		return 1;
	}
	if (print_only) {
		config_print(mxd->config, stdout);
		return 0;
	}
	if (check_only) {
		if (priv_check_user(mxd->config) == -1)
			return 1;
		printf("%s: configuration ok\n", path);
		return 0;
	}

	/* Bound as root before the split; only the engine serves it. */
	if (control_socket_open(mxd->config->control_socket) == -1)
		fatalx("cannot open the control socket");
	priv_start(mxd->config);	/* the privileged parent never returns from here */

	signal(SIGPIPE, SIG_IGN);
	mxd->base = event_base_new();
	if (mxd->base == NULL)
		fatalx("cannot create the event loop");
	mxd->clients = client_table_new();
	mxd->next_session_id = ((uint64_t)time(NULL) & 0xffffff) << 16;
	/* Before anything listens: a signal that comes as soon as a port answers is handled, not fatal. */
	sig_hup = evsignal_new(mxd->base, SIGHUP, reload_signal_cb, NULL);
	sig_term = evsignal_new(mxd->base, SIGTERM, shutdown_cb, NULL);
	sig_int = evsignal_new(mxd->base, SIGINT, shutdown_cb, NULL);
	sig_usr1 = evsignal_new(mxd->base, SIGUSR1, stats_cb, NULL);
	evsignal_add(sig_hup, NULL);
	evsignal_add(sig_term, NULL);
	evsignal_add(sig_int, NULL);
	evsignal_add(sig_usr1, NULL);
	priv_signals_ready();
	if (priv_engine_start() == -1)
		fatalx("cannot set up the channel to the privileged side");
	reload_listen();	/* the parent's answers to a reload in a split */
	if (listeners_apply(mxd->config, err, sizeof(err)) == -1)
		fatalx("cannot listen on every tier address; exiting");
	if (health_start() == -1)
		fatalx("cannot start the backend probe");
	if (dns_init(mxd->config) == -1)
		log_warn("DNS checks will report \"unknown\" until a resolver is configured");
	if (history_init() == -1 || shed_start() == -1)
		fatalx("cannot start the history sweep or the load monitor");
	if (control_start() == -1)
		fatalx("cannot open the control socket");
	kernel_init(mxd->config);	/* never fatal: refusals also apply in mxtierd itself */
	db_start(mxd->config);		/* never fatal either: mail flows without the database */
	priv_local_start();		/* no split: the set writer and the database connections live here */
	if (http_local_start() == -1)	/* no split: the dashboard too; in a split the parent forked it */
		fatalx("cannot serve the dashboard on http_listen; exiting");
	priv_drop();			/* a split: from here on no root, no capabilities */

	{
		char backend[NETADDR_STRLEN];

		log_info("mxtierd started: %s, backend %s port %u, client info %s", mxd->config->path,
		    netaddr_format(&mxd->config->backend_addr, backend, sizeof(backend)), mxd->config->backend_port,
		    client_info_name(mxd->config->backend_client_info));
	}
	/* Every listener and the control socket are open: systemd may start what waits for us. */
	service_notify("READY=1");

	event_base_dispatch(mxd->base);

	/* A timer that has fired is no longer the loop's: free what shutdown_cb made. */
	if (shutdown_timer != NULL)
		event_free(shutdown_timer);
	if (exit_check_timer != NULL)
		event_free(exit_check_timer);
	shutdown_timer = exit_check_timer = NULL;
	event_free(sig_hup);
	event_free(sig_term);
	event_free(sig_int);
	event_free(sig_usr1);

	http_local_stop();
	control_stop();
	kernel_shutdown();
	db_stop();
	priv_local_stop();
	priv_engine_stop();
	stats_log(&mxd->stats);
	log_info("mxtierd stopped");
	return 0;
}
