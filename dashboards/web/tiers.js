/* tiers.js - the Tiers page: GET /api/tiers, this appliance's listeners and
 * every appliance of the shared database with its heartbeat age and health. */
"use strict";

(() => {
	const REFRESH_MS = 5000;
	const STALE_S = 60;             /* a heartbeat older than this: the appliance is not reporting */
	const MX_PREF = { primary: "10", secondary: "20", bait: "30" };
	const { el } = MX;

	function health(a) {
		if (typeof a.heartbeat_age_s === "number" && a.heartbeat_age_s > STALE_S)
			return ["no heartbeat", "bad"];
		if (a.backend_down)
			return ["backend down", "bad"];
		if (a.shedding)
			return ["shedding load", "warn"];
		return ["healthy", "ok"];
	}

	async function load() {
		const r = await MX.api("/api/tiers");
		if (r.status !== 200) {
			MX.status("tiers: " + (r.body.error || "HTTP " + r.status), "error");
			return;
		}
		MX.setText("appliance-name", r.body.appliance ? "appliance " + r.body.appliance : "this appliance");
		const lb = MX.clear(document.getElementById("listener-rows"));
		const listeners = r.body.listeners || [];
		if (listeners.length === 0)
			lb.appendChild(el("tr", {}, el("td", { colspan: 5, class: "empty" }, "no tier address")));
		for (const l of listeners)
			lb.appendChild(el("tr", { class: "listener" }, el("td", {}, l.address), el("td", { class: "n" }, l.port),
				el("td", {}, el("span", { class: "tag" }, l.role)), el("td", {}, MX_PREF[l.role] || "-"),
				el("td", {}, l.transparent ? "yes" : "no")));
		const ab = MX.clear(document.getElementById("appliance-rows"));
		const apps = r.body.appliances || [];
		if (apps.length === 0)
			ab.appendChild(el("tr", {}, el("td", { colspan: 5, class: "empty" },
				"no database: only this appliance is known (set dashboard_database, see History)")));
		for (const a of apps) {
			const [text, kind] = health(a);
			const map = Object.entries(a.tier_map || {}).map(([addr, role]) => el("span", { class: "tag" },
				addr + " " + role));
			ab.appendChild(el("tr", { class: "appliance" }, el("td", {}, a.name), el("td", {}, a.version || "-"),
				el("td", {}, map.length ? map : "-"), el("td", { class: "n" }, MX.fmtAge(a.heartbeat_age_s)),
				el("td", { class: kind }, text)));
		}
		MX.status("updated " + new Date().toLocaleTimeString(), "ok");
	}

	MX.nav("Tiers");
	/* refresh - one request in flight at a time: the next is asked for after the last answer */
	const refresh = () => load().finally(() => setTimeout(refresh, REFRESH_MS));
	refresh();
})();
