/*
 * reload.c - reloading the configuration: SIGHUP, or the operator's
 * "reload" on the control socket, which waits for the outcome. Alone, the
 * process reads the file itself; in a split the privileged parent reads and
 * checks it as root and sends the text (database redacted) or why it
 * refused.
 */
#include "reload.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "daemon.h"
#include "db.h"
#include "dns.h"
#include "kernel.h"
#include "listener.h"
#include "log.h"
#include "priv.h"
#include "relay.h"
#include "service.h"

/*
 * The operator's reload (control socket "reload") that waits for its
 * outcome: one at a time. In a split the outcome comes from the parent
 * (the new config text, or why it refused), so it may come later.
 */
static struct {
	daemon_reload_done	 done;
	void			*arg;
} reload_waiter;

/* reload_finish - tell the waiting operator, if any, how the reload went. */
static void
reload_finish(bool ok, const char *text)
{
	daemon_reload_done done = reload_waiter.done;

	reload_waiter.done = NULL;
	if (done != NULL)
		done(reload_waiter.arg, ok, text);
}

/* reload_apply - a checked configuration replaces the running one (sessions keep theirs). */
static void
reload_apply(struct config *next)
{
	char err[1024], text[1200];

	if (mxd->draining) {
		config_unref(next);
		reload_finish(false, "mxtierd is stopping");
		return;
	}
	if (listeners_apply(next, err, sizeof(err)) == -1)
		log_warn("reload: some tier addresses could not be bound (see above)");
	config_unref(mxd->config);
	mxd->config = next;
	relay_pool_flush("the configuration was reloaded");
	dns_init(next);
	kernel_reconfigure(next);
	db_reconfigure(next);
	priv_local_reconfigure(next);
	log_info("reloaded %s", next->path);
	service_notify("READY=1");
	if (err[0] != '\0') {
		snprintf(text, sizeof(text), "reloaded %s, but %s", next->path, err);
		reload_finish(false, text);
	} else {
		snprintf(text, sizeof(text), "reloaded %s", next->path);
		reload_finish(true, text);
	}
}

/* reload_refused - the running configuration stays; err says why. */
static void
reload_refused(const char *err)
{
	char text[1200];

	snprintf(text, sizeof(text), "reload refused: %s", err);
	reload_finish(false, text);
}

/* reload_take - what this process parsed: applied, or (NULL) refused with the loader's err. */
static void
reload_take(struct config *next, const char *err)
{
	if (next == NULL) {
		log_warn("reload refused: %s (keeping the running configuration)", err);
		service_notify("READY=1");
		reload_refused(err);
		return;
	}
	reload_apply(next);
}

void
reload_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	char err[1024];
	struct config *next;

	/* In a split the parent reads the file (as root) and sends us its text: ask it to. */
	if (priv_role() == PRIV_ROLE_ENGINE) {
		if (priv_to_privileged(PRIV_MSG_RELOAD, NULL, 0) == -1)
			reload_finish(false, "could not ask the privileged process (channel full)");
		return;
	}
	service_notify("RELOADING=1");
	next = config_load(mxd->config->path, err, sizeof(err));
	reload_take(next, err);
}

/* config_text_cb - the privileged parent's reload: the file it checked, the database value redacted. */
static void
config_text_cb(const void *payload, size_t len)
{
	char err[1024];
	struct config *next = config_load_string(mxd->config->path, payload, err, sizeof(err));

	reload_take(next, err);
}

/* reload_refused_cb - the parent kept the running configuration (it logged why). */
static void
reload_refused_cb(const void *payload, size_t len)
{
	char err[PRIV_REFUSAL_MAX + 1];

	snprintf(err, sizeof(err), "%.*s", (int)len, (const char *)payload);
	reload_refused(err);
}

int
daemon_reload_request(daemon_reload_done done, void *arg)
{
	if (reload_waiter.done != NULL)
		return -1;
	reload_waiter.done = done;
	reload_waiter.arg = arg;
	reload_signal_cb(SIGHUP, 0, NULL);
	return 0;
}

void
daemon_reload_forget(void *arg)
{
	if (reload_waiter.arg == arg)
		reload_waiter.done = NULL;
}

void
reload_listen(void)
{
	priv_on(PRIV_MSG_CONFIG, config_text_cb);
	priv_on(PRIV_MSG_RELOAD_REFUSED, reload_refused_cb);
}
