/* history.js - the History page: GET /api/history?range=…, the views of
 * db/migrations/0002_dashboard_views.sql as the server reads them.  Without
 * a database (503) it says what to configure. */
"use strict";

(() => {
	const TIERS = ["primary", "secondary", "bait"];
	const VERDICTS = ["relay", "tempfail", "reject", "block", "none"];
	const MAX_TABLE_ROWS = 500;
	const RANGE_DAYS = { day: 1, week: 7, month: 31 };
	const HOUR = 3600, DAY = 86400;
	let data = null;

	const hourSec = (iso) => Math.floor(Date.parse(iso) / 1000);
	const daySec = (day) => Math.floor(Date.parse(String(day).slice(0, 10) + "T00:00:00Z") / 1000);
	const num = (v) => (typeof v === "number" && isFinite(v) ? v : Number(v) || 0);

	/* series - rows summed into [xs, ...one array per name] by x and name. */
	function series(rows, xOf, nameOf, names) {
		const byX = new Map();
		for (const r of rows) {
			const x = xOf(r);
			if (!isFinite(x))
				continue;
			if (!byX.has(x))
				byX.set(x, {});
			const m = byX.get(x), n = nameOf(r);
			m[n] = (m[n] || 0) + num(r.sessions);
		}
		const xs = Array.from(byX.keys()).sort((a, b) => a - b);
		return [xs].concat(names.map((n) => xs.map((x) => byX.get(x)[n] || 0)));
	}

	function filtered(rows) {
		const a = document.getElementById("appliance").value;
		return (rows || []).filter((r) => !a || r.appliance === a);
	}

	function blockedTable(kind, rows) {
		const body = MX.clear(document.getElementById("blocked-" + kind));
		const mine = rows.filter((r) => r.kind === kind).sort((a, b) => num(b.sessions) - num(a.sessions));
		if (mine.length === 0)
			body.appendChild(MX.el("tr", {}, MX.el("td", { colspan: 3, class: "empty" }, "none")));
		for (const r of mine.slice(0, 20)) {
			const key = String(r.key);
			const link = kind === "prefix" ? key : MX.el("a", { href: "sender.html?q=" + encodeURIComponent(key) }, key);
			body.appendChild(MX.el("tr", {}, MX.el("td", {}, link), MX.el("td", { class: "n" }, MX.fmtInt(num(r.sessions))),
				MX.el("td", {}, MX.fmtTime(r.last_seen))));
		}
	}

	function dayTable(stopped, retried) {
		const days = new Map();
		const get = (d) => days.get(d) || days.set(d, { sessions: 0, stopped: 0, deferred: 0, retried: 0 }).get(d);
		for (const r of stopped) {
			const d = get(String(r.day).slice(0, 10));
			d.sessions += num(r.sessions);
			d.stopped += num(r.stopped);
		}
		for (const r of retried) {
			const d = get(String(r.day).slice(0, 10));
			d.deferred += num(r.deferred);
			d.retried += num(r.retried_relayed);
		}
		const body = MX.clear(document.getElementById("day-rows"));
		const keys = Array.from(days.keys()).sort().reverse();
		if (keys.length === 0)
			body.appendChild(MX.el("tr", {}, MX.el("td", { colspan: 6, class: "empty" }, "no sessions in this range")));
		for (const k of keys) {
			const d = days.get(k);
			body.appendChild(MX.el("tr", { "data-day": k }, MX.el("td", {}, k), MX.el("td", { class: "n" }, MX.fmtInt(d.sessions)),
				MX.el("td", { class: "n" }, MX.fmtInt(d.stopped)),
				MX.el("td", { class: "n" }, d.sessions ? MX.fmtPct(d.stopped / d.sessions) : "-"),
				MX.el("td", { class: "n" }, MX.fmtInt(d.deferred)), MX.el("td", { class: "n" }, MX.fmtInt(d.retried))));
		}
		return keys.sort().map((k) => [daySec(k), days.get(k)]);
	}

	/* xRange - the x scale of a chart: the whole range asked for, whatever the rows hold. */
	function xRange(seconds, step) {
		const now = Date.now() / 1000;
		return { x: { time: true, range: () => [Math.floor((now - seconds) / step) * step - step / 2, now + step / 2] },
			y: { range: (u, lo, hi) => [0, Math.max(1, hi) * 1.1] } };
	}

	function draw() {
		const hourly = filtered(data.hourly), daily = filtered(data.daily);
		const days = RANGE_DAYS[data.range] || 7;
		const dots = (n) => Array.from({ length: n }, () => ({ points: { show: true, size: 7 } }));
		MX.chart(document.getElementById("chart-hourly"), "", TIERS,
			series(hourly, (r) => hourSec(r.hour), (r) => r.tier, TIERS),
			{ fill: true, series: dots(TIERS.length), scales: xRange(DAY, HOUR) });
		MX.chart(document.getElementById("chart-daily"), "", VERDICTS,
			series(daily, (r) => daySec(r.day), (r) => r.verdict, VERDICTS),
			{ series: dots(VERDICTS.length), scales: xRange(days * DAY, DAY) });
		const perDay = dayTable(filtered(data.stopped_before_backend), filtered(data.retried_relayed));
		const pct = xRange(days * DAY, DAY);
		pct.y = { range: [0, 100] };
		MX.chart(document.getElementById("chart-stopped"), "", ["stopped share %", "retried & relayed / deferred %"],
			[perDay.map((d) => d[0]), perDay.map((d) => d[1].sessions ? 100 * d[1].stopped / d[1].sessions : null),
				perDay.map((d) => d[1].deferred ? 100 * d[1].retried / d[1].deferred : null)],
			{ series: dots(2), scales: pct });
		const top = data.top_blocked || [];
		for (const kind of ["address", "prefix", "rdns_domain"])
			blockedTable(kind, top);
		const body = MX.clear(document.getElementById("daily-rows"));
		const rows = daily.slice().sort((a, b) => String(b.day).localeCompare(String(a.day)) ||
			String(a.appliance).localeCompare(String(b.appliance)) || TIERS.indexOf(a.tier) - TIERS.indexOf(b.tier));
		for (const r of rows.slice(0, MAX_TABLE_ROWS))
			body.appendChild(MX.el("tr", { class: "daily-row" }, MX.el("td", {}, String(r.day).slice(0, 10)),
				MX.el("td", {}, r.appliance), MX.el("td", {}, r.tier),
				MX.el("td", {}, MX.el("span", { class: "tag " + r.verdict }, r.verdict)),
				MX.el("td", { class: "n" }, MX.fmtInt(num(r.sessions)))));
		if (rows.length === 0)
			body.appendChild(MX.el("tr", {}, MX.el("td", { colspan: 5, class: "empty" }, "no sessions in this range")));
	}

	async function load() {
		const range = document.getElementById("range").value;
		MX.status("loading…");
		const r = await MX.api("/api/history?range=" + encodeURIComponent(range));
		if (r.status === 503 || (r.status === 200 && r.body.error)) {
			document.getElementById("history").hidden = true;
			document.getElementById("controls").hidden = true;
			document.getElementById("no-database").hidden = false;
			MX.setText("no-database-why", r.body.error || "no database configured");
			MX.status("");
			return;
		}
		if (r.status !== 200) {
			MX.status("history: " + (r.body.error || "HTTP " + r.status), "error");
			return;
		}
		data = r.body;
		const sel = document.getElementById("appliance");
		const had = sel.value;
		MX.clear(sel).appendChild(MX.el("option", { value: "" }, "all"));
		for (const a of data.appliances || [])
			sel.appendChild(MX.el("option", { value: a, selected: a === had }, a));
		draw();
		MX.status((data.daily || []).length + " day rows · " + (data.hourly || []).length + " hour rows", "ok");
	}

	MX.nav("History");
	document.getElementById("range").addEventListener("change", load);
	document.getElementById("appliance").addEventListener("change", () => data && draw());
	load();
})();
