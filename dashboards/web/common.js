/* common.js - what every page of the built-in dashboard shares: the JSON
 * client (same origin, CSRF token for POST), DOM helpers that only ever set
 * text (never HTML from the API), number formatting and the uPlot defaults.
 * Plain ES2017, no build step; the pages work without internet access. */
"use strict";

const MX = (() => {
	const FETCH_TIMEOUT_MS = 8000;
	let session = null;

	/* el - an element with attributes and children; strings become text nodes. */
	function el(tag, attrs, ...children) {
		const e = document.createElement(tag);
		for (const [k, v] of Object.entries(attrs || {})) {
			if (v === null || v === undefined || v === false)
				continue;
			if (k === "class")
				e.className = v;
			else if (k.startsWith("on"))
				e.addEventListener(k.slice(2), v);
			else
				e.setAttribute(k, v === true ? "" : String(v));
		}
		for (const c of children.flat()) {
			if (c === null || c === undefined)
				continue;
			e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
		}
		return e;
	}

	/* setText - an element's text, by id; returns the element. */
	function setText(id, value) {
		const e = document.getElementById(id);
		if (e)
			e.textContent = value === null || value === undefined ? "-" : String(value);
		return e;
	}

	function clear(node) {
		while (node.firstChild)
			node.removeChild(node.firstChild);
		return node;
	}

	/* api - GET or POST a JSON endpoint; resolves {status, body} (body {} when not JSON). */
	async function api(path, opts) {
		const o = opts || {};
		const ctl = new AbortController();
		const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
		const init = { method: o.method || "GET", credentials: "same-origin", cache: "no-store",
			headers: { "Accept": "application/json" }, signal: ctl.signal };
		if (o.body !== undefined) {
			init.headers["Content-Type"] = "application/json";
			init.body = JSON.stringify(o.body);
		}
		if (init.method !== "GET") {
			const s = await getSession();
			init.headers["X-CSRF-Token"] = s ? s.csrf : "";
		}
		try {
			const r = await fetch(path, init);
			let body = {};
			try {
				body = await r.json();
			} catch (e) {
				body = {};
			}
			return { status: r.status, body: body };
		} catch (e) {
			return { status: 0, body: { error: e.name === "AbortError" ? "timed out" : "not reachable" } };
		} finally {
			clearTimeout(timer);
		}
	}

	/* getSession - GET /api/session once: the user's name and the CSRF token. */
	async function getSession() {
		if (session)
			return session;
		const r = await api("/api/session");
		if (r.status === 200 && typeof r.body.csrf === "string")
			session = r.body;
		return session;
	}

	/* nav - the page header: links, who is logged in, a status line. */
	function nav(current) {
		const pages = [["index.html", "Live"], ["history.html", "History"], ["sender.html", "Sender"],
			["listings.html", "Listings"], ["tiers.html", "Tiers"]];
		const bar = el("nav", { class: "nav" }, el("span", { class: "brand" }, "mxtier"),
			pages.map(([href, name]) => el("a", { href: href, class: name === current ? "current" : null }, name)),
			el("span", { class: "who", id: "who" }, ""));
		document.body.insertBefore(bar, document.body.firstChild);
		getSession().then((s) => {
			setText("who", s ? s.user + (s.version ? " · mxtier " + s.version : "") : "");
		});
	}

	/* status - the page's one-line status (kind: ok | warn | error). */
	function status(text, kind) {
		const e = document.getElementById("status");
		if (!e)
			return;
		e.textContent = text || "";
		e.className = "status " + (kind || "");
	}

	function fmtInt(n) {
		return typeof n === "number" && isFinite(n) ? Math.round(n).toLocaleString("en-US") : "-";
	}

	function fmtRate(n) {
		return typeof n === "number" && isFinite(n) ? n.toFixed(n < 10 ? 2 : 1) : "-";
	}

	function fmtPct(n) {
		return typeof n === "number" && isFinite(n) ? (100 * n).toFixed(1) + " %" : "-";
	}

	/* fmtAge - seconds as "4 s", "3 min", "2 h", "5 d". */
	function fmtAge(s) {
		if (typeof s !== "number" || !isFinite(s))
			return "-";
		if (s < 120)
			return Math.round(s) + " s";
		if (s < 7200)
			return Math.round(s / 60) + " min";
		if (s < 172800)
			return Math.round(s / 3600) + " h";
		return Math.round(s / 86400) + " d";
	}

	function fmtTime(iso) {
		if (!iso)
			return "-";
		const d = new Date(iso);
		return isNaN(d) ? String(iso) : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
	}

	const COLORS = { primary: "#1f77b4", secondary: "#2ca02c", bait: "#d62728", relay: "#2ca02c",
		tempfail: "#ff7f0e", reject: "#d62728", block: "#7f3f98", none: "#999999" };
	const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

	function color(name, i) {
		return COLORS[name] || PALETTE[i % PALETTE.length];
	}

	/* chart - a uPlot in container (cleared first), sized to it; names label the y series. */
	function chart(container, title, names, data, opts) {
		const o = opts || {};
		clear(container);
		const width = Math.max(280, container.clientWidth || 600);
		const series = [{}].concat(names.map((n, i) => Object.assign({
			label: n, stroke: color(n, i), width: 2,
			fill: o.fill ? color(n, i) + "33" : undefined,
			points: { show: o.points || false, size: 7, fill: color(n, i) },
			paths: o.points ? () => null : undefined,
		}, o.series ? o.series[i] : {})));
		const axes = [{}, Object.assign({ size: 50 }, o.yAxis || {})];
		return new uPlot({ title: title, width: width, height: o.height || 220, series: series, axes: axes,
			scales: o.scales || { x: { time: o.time !== false } }, legend: { show: true },
			cursor: { drag: { x: false, y: false } } }, data, container);
	}

	return { el, setText, clear, api, getSession, nav, status, fmtInt, fmtRate, fmtPct, fmtAge, fmtTime,
		chart, color };
})();
