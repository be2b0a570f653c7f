/* live.js - the Live page: polls GET /api/live every POLL_MS, keeps the last
 * MAX_SAMPLES answers (a bounded ring) and draws rates from successive
 * samples.  A counter that went down means mxtierd restarted: the ring
 * starts again. */
"use strict";

(() => {
	const POLL_MS = 1500;
	const MAX_SAMPLES = 240;          /* 6 minutes at 1.5 s */
	const RATE_WINDOW_S = 6;          /* a chart point: the rate over about this long */
	const MINUTE_S = 60;
	const TIERS = ["primary", "secondary", "bait"];
	const VERDICTS = ["relay", "tempfail", "reject", "block", "none"];
	const samples = [];
	const charts = {};
	let failures = 0;

	const num = (v) => (typeof v === "number" && isFinite(v) ? v : 0);
	const tierCount = (s, tier) => num(s.tiers && s.tiers[tier] && s.tiers[tier].sessions);
	const verdictCount = (s, v) => TIERS.reduce((a, t) =>
		a + num(s.tiers && s.tiers[t] && s.tiers[t].verdicts && s.tiers[t].verdicts[v]), 0);
	const tierVerdict = (s, t, v) => num(s.tiers && s.tiers[t] && s.tiers[t].verdicts && s.tiers[t].verdicts[v]);

	/* restarted - a counter of b is below a's: the daemon started again. */
	function restarted(a, b) {
		return num(b.sessions) < num(a.sessions) || num(b.uptime_s) + 1 < num(a.uptime_s);
	}

	/* earlier - the oldest sample within `seconds` of samples[i]. */
	function earlier(i, seconds) {
		let j = i;
		while (j > 0 && samples[i].time - samples[j - 1].time <= seconds)
			j--;
		return j === i && i > 0 ? i - 1 : j;
	}

	function rate(i, seconds, count) {
		const j = earlier(i, seconds);
		const dt = samples[i].time - samples[j].time;
		return j === i || dt <= 0 ? null : Math.max(0, (count(samples[i]) - count(samples[j])) / dt);
	}

	/* quantile - the upper bound (ms) of the bucket holding quantile q of cumulative buckets. */
	function quantile(buckets, q) {
		if (!Array.isArray(buckets) || buckets.length === 0)
			return null;
		const total = num(buckets[buckets.length - 1][1]);
		if (total <= 0)
			return null;
		for (const [le, c] of buckets)
			if (num(c) >= q * total)
				return le === "+Inf" ? Infinity : Number(le);
		return null;
	}

	/* bucketDelta - cumulative buckets of b minus those of a (same bounds), or b's own. */
	function bucketDelta(a, b) {
		const bb = b && b.backend && b.backend.reply_ms && b.backend.reply_ms.buckets;
		const ab = a && a.backend && a.backend.reply_ms && a.backend.reply_ms.buckets;
		if (!Array.isArray(bb))
			return null;
		if (!Array.isArray(ab) || ab.length !== bb.length)
			return bb;
		return bb.map(([le, c], k) => [le, num(c) - num(ab[k][1])]);
	}

	const fmtMs = (v) => (v === null ? "-" : v === Infinity ? "> max" : "≤ " + v + " ms");

	function ensureCharts() {
		if (charts.tiers)
			return;
		const opts = { fill: true, yAxis: { values: (u, v) => v.map((x) => x.toFixed(1)) } };
		charts.tiers = MX.chart(document.getElementById("chart-tiers"), "", TIERS, [[], [], [], []], opts);
		charts.verdicts = MX.chart(document.getElementById("chart-verdicts"), "", VERDICTS,
			[[], [], [], [], [], []], opts);
		charts.latency = MX.chart(document.getElementById("chart-latency"), "", ["p50", "p95"], [[], [], []],
			{ series: [{ stroke: "#1f77b4" }, { stroke: "#d62728" }] });
		window.addEventListener("resize", () => {
			for (const [id, c] of Object.entries(charts)) {
				const box = document.getElementById("chart-" + id);
				c.setSize({ width: Math.max(280, box.clientWidth), height: 220 });
			}
		});
	}

	function drawCharts() {
		ensureCharts();
		const xs = samples.map((s) => s.time);
		const idx = samples.map((_, i) => i);
		charts.tiers.setData([xs].concat(TIERS.map((t) => idx.map((i) => rate(i, RATE_WINDOW_S,
			(s) => tierCount(s, t))))));
		charts.verdicts.setData([xs].concat(VERDICTS.map((v) => idx.map((i) => rate(i, RATE_WINDOW_S,
			(s) => verdictCount(s, v))))));
		const lat = idx.map((i) => {
			const d = bucketDelta(samples[earlier(i, RATE_WINDOW_S * 2)], samples[i]);
			const fin = (x) => (x === null || x === Infinity ? null : x);
			return i === 0 ? [null, null] : [fin(quantile(d, 0.5)), fin(quantile(d, 0.95))];
		});
		charts.latency.setData([xs, lat.map((l) => l[0]), lat.map((l) => l[1])]);
	}

	function drawTables(s) {
		const last = samples.length - 1;
		const rows = MX.clear(document.getElementById("tier-rows"));
		for (const t of TIERS) {
			rows.appendChild(MX.el("tr", { id: "tier-" + t },
				MX.el("td", {}, t),
				MX.el("td", { class: "n", id: "count-" + t }, MX.fmtInt(tierCount(s, t))),
				["relay", "tempfail", "reject", "block"].map((v) =>
					MX.el("td", { class: "n", id: "count-" + t + "-" + v }, MX.fmtInt(tierVerdict(s, t, v)))),
				MX.el("td", { class: "n" }, MX.fmtRate(rate(last, MINUTE_S, (x) => tierCount(x, t))))));
		}
		const first = samples[earlier(last, MINUTE_S * 5)];
		const reasons = Object.entries(s.reasons || {}).filter(([, n]) => typeof n === "number")
			.sort((a, b) => b[1] - a[1]).slice(0, 15);
		const rr = MX.clear(document.getElementById("reason-rows"));
		if (reasons.length === 0)
			rr.appendChild(MX.el("tr", {}, MX.el("td", { colspan: 3, class: "empty" }, "no reasons yet")));
		for (const [name, n] of reasons) {
			const before = first && first.reasons ? num(first.reasons[name]) : 0;
			rr.appendChild(MX.el("tr", { "data-reason": name }, MX.el("td", {}, MX.el("span", { class: "tag" }, name)),
				MX.el("td", { class: "n" }, MX.fmtInt(n)), MX.el("td", { class: "n" }, MX.fmtInt(n - before))));
		}
		const sets = MX.clear(document.getElementById("set-rows"));
		const entries = Object.entries(s.kernel_sets || {});
		if (entries.length === 0)
			sets.appendChild(MX.el("tr", {}, MX.el("td", { colspan: 2, class: "empty" }, "kernel sets off")));
		for (const [name, n] of entries)
			sets.appendChild(MX.el("tr", {}, MX.el("td", {}, name), MX.el("td", { class: "n", id: "set-" + name },
				MX.fmtInt(n))));
	}

	function drawStats(s) {
		const last = samples.length - 1;
		MX.setText("open-sessions", MX.fmtInt(s.open_sessions));
		MX.setText("total-sessions", MX.fmtInt(s.sessions));
		MX.setText("relayed", MX.fmtInt(s.messages_relayed));
		MX.setText("rate-total", MX.fmtRate(rate(last, MINUTE_S, (x) => num(x.sessions))));
		MX.setText("uptime", MX.fmtAge(s.uptime_s));
		const b = s.backend || {};
		MX.setText("backend-health", b.healthy ? "healthy" : "down").className = "v " + (b.healthy ? "ok" : "bad");
		const d = bucketDelta(samples[earlier(last, MINUTE_S)], s);
		const all = b.reply_ms && b.reply_ms.buckets;
		const use = d && quantile(d, 0.5) !== null ? d : all;
		MX.setText("backend-latency", fmtMs(quantile(use, 0.5)) + " / " + fmtMs(quantile(use, 0.95)));
		MX.setText("shedding", s.shedding ? "on" + (s.shed_reason ? " (" + s.shed_reason + ")" : "") : "off")
			.className = "v " + (s.shedding ? "warn" : "ok");
		const db = s.db || {};
		MX.setText("db-state", !db.enabled ? "off" : db.connected ? "connected" : "disconnected")
			.className = "v " + (!db.enabled ? "" : db.connected ? "ok" : "bad");
		MX.setText("db-queue", db.enabled ? MX.fmtInt(db.queue) + " / " + MX.fmtInt(db.dropped) : "-");
	}

	async function poll() {
		const r = await MX.api("/api/live");
		if (r.status === 200 && typeof r.body.time === "number") {
			failures = 0;
			const s = r.body;
			if (samples.length && restarted(samples[samples.length - 1], s))
				samples.length = 0;
			samples.push(s);
			if (samples.length > MAX_SAMPLES)
				samples.splice(0, samples.length - MAX_SAMPLES);
			drawStats(s);
			drawTables(s);
			drawCharts();
			MX.status("updated " + new Date(s.time * 1000).toLocaleTimeString() + " · every " +
				POLL_MS / 1000 + " s", "ok");
		} else {
			failures++;
			MX.status("no answer from mxtierd (" + (r.body.error || "HTTP " + r.status) + ")" +
				(failures > 1 ? ", " + failures + " times" : ""), "error");
		}
		setTimeout(poll, POLL_MS);
	}

	MX.nav("Live");
	poll();
})();
