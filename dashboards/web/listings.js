/* listings.js - the Listings page: GET /api/listings, and POST /api/listings
 * (with the CSRF token of GET /api/session) to add or remove a block or an
 * allow entry, carried out as `mxtierctl block|allow add|del` is. */
"use strict";

(() => {
	const REFRESH_MS = 5000;
	const MAX_ROWS = 500;
	const { el } = MX;

	async function change(action, list, address, ttl) {
		const body = { action: action, list: list, address: address };
		if (ttl)
			body.ttl = ttl;
		MX.status((action === "add" ? "adding " : "removing ") + list + " " + address + "…");
		const r = await MX.api("/api/listings", { method: "POST", body: body });
		if (r.status === 200 && r.body.ok) {
			MX.status(list + " " + action + " " + address + ": " + (r.body.result || "ok") +
				(r.body.database ? " (database: " + r.body.database + ")" : ""), "ok");
		} else {
			MX.status(list + " " + action + " " + address + " refused: " + (r.body.error || "HTTP " + r.status),
				"error");
		}
		await load();
		return r;
	}

	function liveRows(id, items, list) {
		const body = MX.clear(document.getElementById(id));
		const cols = list === "block" ? 5 : 4;
		if (!items || items.length === 0)
			body.appendChild(el("tr", {}, el("td", { colspan: cols, class: "empty" }, "empty")));
		for (const it of (items || []).slice(0, MAX_ROWS)) {
			const addr = String(it.address);
			body.appendChild(el("tr", { "data-address": addr, class: list + "-row" },
				el("td", {}, el("a", { href: "sender.html?q=" + encodeURIComponent(addr.replace(/\/.*$/, "")) }, addr)),
				el("td", { class: "n" }, it.expires_in_s === null || it.expires_in_s === undefined ? "never" :
					MX.fmtAge(it.expires_in_s)),
				el("td", {}, it.reason || "-"),
				list === "block" ? el("td", { class: "n" }, MX.fmtInt(it.offences)) : null,
				el("td", {}, el("button", { type: "button", class: "secondary remove", "data-address": addr,
					onclick: () => change("remove", list, addr) }, "remove"))));
		}
	}

	async function load() {
		const r = await MX.api("/api/listings");
		if (r.status !== 200) {
			MX.status("listings: " + (r.body.error || "HTTP " + r.status), "error");
			return;
		}
		liveRows("block-rows", r.body.block, "block");
		liveRows("allow-rows", r.body.allow, "allow");
		const card = document.getElementById("database-card");
		card.hidden = !Array.isArray(r.body.database);
		const body = MX.clear(document.getElementById("database-rows"));
		const db = r.body.database || [];
		if (db.length === 0)
			body.appendChild(el("tr", {}, el("td", { colspan: 5, class: "empty" }, "none")));
		for (const l of db.slice(0, MAX_ROWS))
			body.appendChild(el("tr", { class: "database-row", "data-network": l.network }, el("td", {}, l.network),
				el("td", {}, l.kind), el("td", {}, l.reason || "-"),
				el("td", {}, l.expires_at ? MX.fmtTime(l.expires_at) : "never"), el("td", {}, l.set_by || "-")));
	}

	MX.nav("Listings");
	const preset = new URLSearchParams(location.search).get("address");
	if (preset)
		document.getElementById("address").value = preset;
	document.getElementById("add").addEventListener("submit", (ev) => {
		ev.preventDefault();
		change("add", document.getElementById("list").value, document.getElementById("address").value.trim(),
			document.getElementById("ttl").value.trim());
	});
	MX.getSession();
	/* refresh - one request in flight at a time: the next is asked for after the last answer */
	const refresh = () => load().finally(() => setTimeout(refresh, REFRESH_MS));
	refresh();
})();
