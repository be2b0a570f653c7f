/*
 * http_metrics.c - the daemon's "status" answer (proxy/engine/
 * control_status.c: "name value" lines) as Prometheus text and as the
 * /api/live object. The lines are the one list of counters: a family
 * here is picked by its name's prefix, and every other numeric line
 * becomes a counter of its own, so no counter can be left out.
 */
#include "http_internal.h"
#include "version.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const tiers[] = { "primary", "secondary", "bait" };
static const char *const verdicts[] = { "none", "relay", "tempfail", "reject" };

/* Values that are states, not counts: a gauge 0/1 each ("up" / "yes" / anything but "no" is 1). */
static const struct {
	const char	*line, *metric, *help;
} states[] = {
	{ "backend", "mxtier_backend_up", "The backend MTA answers its probe (1) or not (0)." },
	{ "shedding", "mxtier_shedding", "Load shedding at the primary is on (1) or off (0)." },
	{ "privsep", "mxtier_privsep", "The daemon runs split into a privileged parent and an unprivileged engine." },
	{ "db_enabled", "mxtier_db_enabled", "A database is configured." },
	{ "db_connected", "mxtier_db_connected", "The database writer is connected." },
	{ "kernel_sets", "mxtier_kernel_sets", "The nftables set writer is open." },
	{ "http", "mxtier_http_up", "The HTTP process runs." },
};

/* Numbers that go up and down. */
static const struct {
	const char	*line, *metric, *help;
} gauges[] = {
	{ "sessions_active", "mxtier_sessions_open", "SMTP sessions open now." },
	{ "history_entries", "mxtier_history_entries", "Clients in the in-memory contact history." },
	{ "db_queue", "mxtier_db_queue", "Events waiting in the database writer's queue." },
};

/* Lines that a family below prints, so the catch-all skips them. */
static const char *const family_prefixes[] = { "tier_verdict_", "reason_", "verdict_", "backend_reply_",
	"kernel_set_elements_" };

int
status_parse(struct status *st, const char *answer)
{
	char *save = NULL, *line;

	memset(st, 0, sizeof(*st));
	if ((st->text = strdup(answer)) == NULL)
		return -1;
	line = strtok_r(st->text, "\n", &save);
	if (line == NULL || strcmp(line, "ok") != 0) {
		status_clear(st);
		return -1;
	}
	while ((line = strtok_r(NULL, "\n", &save)) != NULL && st->n < STATUS_LINES_MAX) {
		char *sp = strchr(line, ' ');

		if (sp == NULL)
			continue;
		*sp = '\0';
		st->lines[st->n].name = line;
		st->lines[st->n].value = sp + 1;
		st->n++;
	}
	return 0;
}

void
status_clear(struct status *st)
{
	free(st->text);
	st->text = NULL;
	st->n = 0;
}

const char *
status_get(const struct status *st, const char *name)
{
	for (size_t i = 0; i < st->n; i++)
		if (strcmp(st->lines[i].name, name) == 0)
			return st->lines[i].value;
	return NULL;
}

uint64_t
status_num(const struct status *st, const char *name)
{
	const char *v = status_get(st, name);

	return v ? strtoull(v, NULL, 10) : 0;
}

static bool
state_on(const char *v)
{
	return v && strcmp(v, "no") != 0 && strcmp(v, "down") != 0 && strcmp(v, "off") != 0;
}

static bool
is_number(const char *v)
{
	return v[0] != '\0' && strspn(v, "0123456789") == strlen(v);
}

static bool
in_family(const char *name)
{
	for (size_t i = 0; i < sizeof(family_prefixes) / sizeof(family_prefixes[0]); i++)
		if (strncmp(name, family_prefixes[i], strlen(family_prefixes[i])) == 0)
			return true;
	return false;
}

static void
family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* metrics_labelled - one labelled family from the lines named prefix + label value. */
static void
metrics_labelled(struct evbuffer *out, const struct status *st, const char *prefix, const char *metric,
    const char *label, const char *type, const char *help)
{
	bool any = false;

	for (size_t i = 0; i < st->n; i++) {
		const char *name = st->lines[i].name;

		if (strncmp(name, prefix, strlen(prefix)) != 0 || !is_number(st->lines[i].value))
			continue;
		if (!any)
			family(out, metric, type, help);
		any = true;
		evbuffer_add_printf(out, "%s{%s=\"%s\"} %s\n", metric, label, name + strlen(prefix), st->lines[i].value);
	}
}

static void
metrics_histogram(struct evbuffer *out, const struct status *st)
{
	static const char prefix[] = "backend_reply_le_ms_";

	family(out, "mxtier_backend_reply_seconds", "histogram",
	    "Time from a command (or end-of-data) sent to the backend MTA to its reply.");
	for (size_t i = 0; i < st->n; i++) {
		const char *name = st->lines[i].name;

		if (strncmp(name, prefix, sizeof(prefix) - 1) != 0)
			continue;
		if (strcmp(name + sizeof(prefix) - 1, "inf") == 0)
			evbuffer_add_printf(out, "mxtier_backend_reply_seconds_bucket{le=\"+Inf\"} %s\n", st->lines[i].value);
		else
			evbuffer_add_printf(out, "mxtier_backend_reply_seconds_bucket{le=\"%g\"} %s\n",
			    atof(name + sizeof(prefix) - 1) / 1000.0, st->lines[i].value);
	}
	evbuffer_add_printf(out, "mxtier_backend_reply_seconds_sum %.6f\n",
	    (double)status_num(st, "backend_reply_sum_us") / 1e6);
	evbuffer_add_printf(out, "mxtier_backend_reply_seconds_count %llu\n",
	    (unsigned long long)status_num(st, "backend_reply_count"));
}

void
metrics_write(struct evbuffer *out, const struct status *st)
{
	family(out, "mxtier_build_info", "gauge", "The mxtierd build; always 1.");
	evbuffer_add_printf(out, "mxtier_build_info{version=\"%s\"} 1\n", MXTIER_VERSION);
	family(out, "mxtier_sessions_total", "counter", "SMTP sessions ended, by the tier they came to and their verdict.");
	for (size_t t = 0; t < sizeof(tiers) / sizeof(tiers[0]); t++)
		for (size_t v = 0; v < sizeof(verdicts) / sizeof(verdicts[0]); v++) {
			char name[64];

			snprintf(name, sizeof(name), "tier_verdict_%s_%s", tiers[t], verdicts[v]);
			evbuffer_add_printf(out, "mxtier_sessions_total{tier=\"%s\",verdict=\"%s\"} %llu\n", tiers[t],
			    verdicts[v], (unsigned long long)status_num(st, name));
		}
	metrics_labelled(out, st, "reason_", "mxtier_session_reasons_total", "reason", "counter",
	    "SMTP sessions by reason code (a session may have several).");
	metrics_labelled(out, st, "verdict_", "mxtier_verdicts_total", "verdict", "counter",
	    "SMTP sessions ended, by verdict, all tiers.");
	metrics_labelled(out, st, "kernel_set_elements_", "mxtier_kernel_set_elements", "set", "gauge",
	    "Elements the set writer keeps in each nftables set.");
	metrics_histogram(out, st);
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
		const char *v = status_get(st, states[i].line);

		if (v == NULL)
			continue;
		family(out, states[i].metric, "gauge", states[i].help);
		evbuffer_add_printf(out, "%s %d\n", states[i].metric, state_on(v) ? 1 : 0);
	}
	for (size_t i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++) {
		const char *v = status_get(st, gauges[i].line);

		if (v == NULL || !is_number(v))
			continue;
		family(out, gauges[i].metric, "gauge", gauges[i].help);
		evbuffer_add_printf(out, "%s %s\n", gauges[i].metric, v);
	}
	/* Every other number is a counter: the name mxtierctl status prints, as mxtier_NAME_total. */
	for (size_t i = 0; i < st->n; i++) {
		const char *name = st->lines[i].name, *v = st->lines[i].value;
		char metric[128], help[160];
		bool known = false;

		if (!is_number(v) || in_family(name))
			continue;
		for (size_t g = 0; g < sizeof(gauges) / sizeof(gauges[0]); g++)
			known |= strcmp(gauges[g].line, name) == 0;
		if (known || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(name))
			continue;
		/* sessions_total is the sessions started; mxtier_sessions_total is taken by the labelled family. */
		snprintf(metric, sizeof(metric), "mxtier_%s_total", strcmp(name, "sessions_total") == 0 ?
		    "connections" : name);
		snprintf(help, sizeof(help), "The counter %s of mxtierctl status.", name);
		family(out, metric, "counter", help);
		evbuffer_add_printf(out, "%s %s\n", metric, v);
	}
}

void
live_write(struct evbuffer *out, const struct status *st, double uptime_s)
{
	struct timespec now;
	const char *shed = status_get(st, "shedding");
	uint64_t cumulative_prev = 0;
	bool first = true;

	clock_gettime(CLOCK_REALTIME, &now);
	evbuffer_add_printf(out, "{\"time\":%.3f,\"uptime_s\":%.0f,\"version\":\"%s\",", (double)now.tv_sec +
	    now.tv_nsec / 1e9, uptime_s, MXTIER_VERSION);
	evbuffer_add_printf(out, "\"open_sessions\":%llu,\"sessions\":%llu,\"messages_relayed\":%llu,\"tiers\":{",
	    (unsigned long long)status_num(st, "sessions_active"), (unsigned long long)status_num(st, "sessions_total"),
	    (unsigned long long)status_num(st, "messages_relayed"));
	for (size_t t = 0; t < sizeof(tiers) / sizeof(tiers[0]); t++) {
		uint64_t total = 0;
		struct evbuffer *v = evbuffer_new();

		if (v == NULL)
			return;
		for (size_t k = 0; k < sizeof(verdicts) / sizeof(verdicts[0]); k++) {
			char name[64];
			uint64_t n;

			snprintf(name, sizeof(name), "tier_verdict_%s_%s", tiers[t], verdicts[k]);
			n = status_num(st, name);
			total += n;
			evbuffer_add_printf(v, "%s\"%s\":%llu", k ? "," : "", verdicts[k], (unsigned long long)n);
		}
		evbuffer_add_printf(out, "%s\"%s\":{\"sessions\":%llu,\"verdicts\":{", t ? "," : "", tiers[t],
		    (unsigned long long)total);
		evbuffer_add_buffer(out, v);
		evbuffer_add_printf(out, "}}");
		evbuffer_free(v);
	}
	evbuffer_add_printf(out, "},\"reasons\":{");
	for (size_t i = 0; i < st->n; i++) {
		const char *name = st->lines[i].name;

		if (strncmp(name, "reason_", 7) != 0 || !is_number(st->lines[i].value) ||
		    strcmp(st->lines[i].value, "0") == 0)
			continue;
		evbuffer_add_printf(out, "%s", first ? "" : ",");
		json_string(out, name + 7);
		evbuffer_add_printf(out, ":%s", st->lines[i].value);
		first = false;
	}
	evbuffer_add_printf(out, "},\"backend\":{\"healthy\":%s,\"failures\":%llu,\"reply_ms\":{\"buckets\":[",
	    state_on(status_get(st, "backend")) ? "true" : "false",
	    (unsigned long long)status_num(st, "backend_failures"));
	first = true;
	for (size_t i = 0; i < st->n; i++) {
		const char *name = st->lines[i].name;

		if (strncmp(name, "backend_reply_le_ms_", 20) != 0)
			continue;
		cumulative_prev = strtoull(st->lines[i].value, NULL, 10);
		if (strcmp(name + 20, "inf") == 0)
			evbuffer_add_printf(out, "%s[\"+Inf\",%llu]", first ? "" : ",", (unsigned long long)cumulative_prev);
		else
			evbuffer_add_printf(out, "%s[%s,%llu]", first ? "" : ",", name + 20, (unsigned long long)cumulative_prev);
		first = false;
	}
	evbuffer_add_printf(out, "],\"count\":%llu,\"sum_ms\":%.3f}},", (unsigned long long)status_num(st, "backend_reply_count"),
	    (double)status_num(st, "backend_reply_sum_us") / 1000.0);
	evbuffer_add_printf(out, "\"shedding\":%s,\"shed_reason\":", state_on(shed) ? "true" : "false");
	if (state_on(shed))
		json_string(out, shed);
	else
		evbuffer_add_printf(out, "null");
	evbuffer_add_printf(out, ",\"kernel_sets\":{");
	first = true;
	for (size_t i = 0; i < st->n; i++) {
		if (strncmp(st->lines[i].name, "kernel_set_elements_", 20) != 0)
			continue;
		evbuffer_add_printf(out, "%s\"%s\":%s", first ? "" : ",", st->lines[i].name + 20, st->lines[i].value);
		first = false;
	}
	evbuffer_add_printf(out, "},\"db\":{\"enabled\":%s,\"connected\":%s,\"queue\":%llu,\"dropped\":%llu,\"written\":%llu},",
	    state_on(status_get(st, "db_enabled")) ? "true" : "false", state_on(status_get(st, "db_connected")) ? "true" : "false",
	    (unsigned long long)status_num(st, "db_queue"), (unsigned long long)status_num(st, "db_dropped"),
	    (unsigned long long)status_num(st, "db_written"));
	evbuffer_add_printf(out, "\"counters\":{");
	first = true;
	for (size_t i = 0; i < st->n; i++) {
		if (!is_number(st->lines[i].value) ||
		    strspn(st->lines[i].name, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(st->lines[i].name))
			continue;
		evbuffer_add_printf(out, "%s\"%s\":%s", first ? "" : ",", st->lines[i].name, st->lines[i].value);
		first = false;
	}
	evbuffer_add_printf(out, "}}");
}
