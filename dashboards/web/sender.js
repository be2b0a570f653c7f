/* sender.js - the Sender page: GET /api/sender?q=… (what `mxtierctl why`
 * says) as advice, a timeline of contacts per tier and the tables behind it. */
"use strict";

(() => {
	const TIERS = ["primary", "secondary", "bait"];
	const VERDICTS = ["relay", "tempfail", "reject", "block", "none"];
	const MAX_ROWS = 50;
	const { el } = MX;

	function rows(id, items, cols, empty) {
		const body = MX.clear(document.getElementById(id));
		if (!items || items.length === 0)
			body.appendChild(el("tr", {}, el("td", { colspan: cols, class: "empty" }, empty)));
		return body;
	}

	function reasonTags(reasons) {
		return (Array.isArray(reasons) ? reasons : []).map((r) => el("span", { class: "tag reason" }, r));
	}

	function timeline(contacts) {
		const pts = contacts.map((c) => [Math.floor(Date.parse(c.time) / 1000), TIERS.indexOf(c.tier) + 1,
			VERDICTS.includes(c.verdict) ? c.verdict : "none"]).filter((p) => isFinite(p[0]) && p[1] > 0)
			.sort((a, b) => a[0] - b[0]);
		const xs = Array.from(new Set(pts.map((p) => p[0])));
		const data = [xs].concat(VERDICTS.map((v) => xs.map((x) => {
			const p = pts.find((q) => q[0] === x && q[2] === v);
			return p ? p[1] : null;
		})));
		const box = document.getElementById("chart-timeline");
		if (xs.length === 0) {
			MX.clear(box).appendChild(el("p", { class: "empty" }, "no contacts recorded"));
			return;
		}
		const pad = xs.length === 1 ? 60 : 0;
		MX.chart(box, "", VERDICTS, data, { points: true, height: 200,
			scales: { x: { time: true, range: (u, lo, hi) => [lo - pad - (hi - lo) * 0.05, hi + pad + (hi - lo) * 0.05] },
				y: { range: [0.5, 3.5] } },
			yAxis: { size: 80, splits: () => [1, 2, 3], values: (u, v) => v.map((t) => TIERS[t - 1] || "") } });
	}

	function show(a) {
		document.getElementById("answer").hidden = false;
		MX.setText("advice", a.advice || "nothing recorded for this sender");
		const live = a.live || {};
		MX.setText("summary", a.query + " (" + a.kind + ")" +
			(live.blocked ? " · blocked on this appliance now" : "") +
			(live.allowed ? " · allow-listed on this appliance" : "") +
			(a.database ? "" : " · no database: this appliance's own memory only"));
		const contacts = (a.contacts || []).slice(0, MAX_ROWS);
		timeline(contacts);
		const cb = rows("contact-rows", contacts, 9, "no contacts recorded");
		for (const c of contacts)
			cb.appendChild(el("tr", { class: "contact" }, el("td", {}, MX.fmtTime(c.time)), el("td", {}, c.appliance),
				el("td", {}, c.tier), el("td", {}, el("span", { class: "tag " + c.verdict }, c.verdict)),
				el("td", {}, reasonTags(c.reasons)), el("td", {}, c.rdns || "-"), el("td", {}, c.helo || "-"),
				el("td", {}, c.mail_from || "-"), el("td", {}, c.backend_reply || "-")));
		const lb = rows("listing-rows", a.listings, 5, "not listed");
		for (const l of a.listings || [])
			lb.appendChild(el("tr", {}, el("td", {}, el("a", { href: "listings.html?address=" +
				encodeURIComponent(l.network) }, l.network)), el("td", {}, l.kind), el("td", {}, l.reason),
				el("td", {}, l.expires_at ? MX.fmtTime(l.expires_at) : "never"), el("td", {}, l.set_by || "-")));
		const rb = rows("reputation-rows", a.reputation, 8, "no reputation yet");
		for (const r of a.reputation || [])
			rb.appendChild(el("tr", {}, el("td", {}, r.kind), el("td", {}, r.key),
				el("td", { class: "n" + (r.score < 0 ? " bad" : r.score > 0 ? " ok" : "") }, MX.fmtInt(r.score)),
				el("td", { class: "n" }, MX.fmtInt(r.sessions)), el("td", { class: "n" }, MX.fmtInt(r.relayed)),
				el("td", { class: "n" }, MX.fmtInt(r.tempfailed)), el("td", { class: "n" }, MX.fmtInt(r.retried)),
				el("td", {}, MX.fmtTime(r.last_seen))));
		const sb = rows("shared-rows", a.shared, 8, "no shared history");
		for (const s of a.shared || [])
			sb.appendChild(el("tr", {}, el("td", {}, s.key), ["last_primary", "last_secondary", "last_bait",
				"pending_since", "pass_until", "block_until"].map((k) => el("td", {}, s[k] ? MX.fmtTime(s[k]) : "-")),
				el("td", {}, s.block_reason || "-")));
	}

	async function ask(q) {
		MX.status("asking…");
		const r = await MX.api("/api/sender?q=" + encodeURIComponent(q));
		if (r.status !== 200) {
			document.getElementById("answer").hidden = true;
			MX.status(r.body.error || "HTTP " + r.status, "error");
			return;
		}
		MX.status("");
		show(r.body);
	}

	MX.nav("Sender");
	const input = document.getElementById("q");
	document.getElementById("ask").addEventListener("submit", (ev) => {
		ev.preventDefault();
		const q = input.value.trim();
		history.replaceState(null, "", "?q=" + encodeURIComponent(q));
		ask(q);
	});
	const first = new URLSearchParams(location.search).get("q");
	if (first) {
		input.value = first;
		ask(first);
	}
})();
