"""The built-in dashboard in a real headless Chromium against the real
mxtierd (http_listen on loopback, the pages of dashboards/web/, PostgreSQL
for history): every page loads without console errors or failed requests
and draws its charts; sessions the test sends show on the Live page within
3 s and on the History page; the Sender page explains a deferred client; a
block added in the Listings page lands in the database; unauthenticated and
cross-site requests are refused.  Screenshots go to
build/dashboard-screenshots/ (browser.SCREENSHOTS)."""

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from dashlib import PAGES, bearer, http
from harness import free_port, wait_until
from browser import SCREENSHOTS

LIVE_DEADLINE_S = 3.0
# What each page shows once its data is in: a JS expression that is true then.
READY = {
    "index.html": "document.getElementById('status').textContent.startsWith('updated') && "
                  "document.querySelectorAll('canvas').length === 3",
    "history.html": "document.getElementById('status').textContent.includes('day rows')",
    "sender.html": "document.querySelectorAll('#contact-rows tr.contact').length > 0",
    "listings.html": "document.querySelectorAll('#block-rows tr').length > 0",
    "tiers.html": "document.querySelectorAll('#listener-rows tr.listener').length === 3",
}
CHARTS = {"index.html": 3, "history.html": 3, "sender.html": 1, "listings.html": 0, "tiers.html": 0}


def ready(b, page, timeout=8.0):
    b.wait_js("return " + READY[page], timeout, what="%s ready" % page)


def send_known_sessions(site):
    """send_known_sessions - 3 relayed at the primary, 2 bait tempfails, 1 deferral (helo-invalid)."""
    clients = [site.relay() for _ in range(3)] + [site.bait() for _ in range(2)] + [site.deferred()]
    site.wait_logged(clients)
    return clients


def live_count(b, tier, verdict):
    text = b.text("count-%s-%s" % (tier, verdict))
    return int(text.replace(",", "")) if text and text.strip("-") else 0


def test_every_page_loads_clean_and_draws_its_charts(start_site, browser):
    site = start_site()
    send_known_sessions(site)
    site.dash_db.dbw.wait_rows(6)
    site.dash_db.fill()         # and the rows of another appliance, B, with blocked sources and listings
    b = browser()
    for page in PAGES:
        url = site.url + page + ("?q=127.0.0.3" if page == "sender.html" else "")
        b.open(url)
        ready(b, page)
        if page == "index.html":        # traffic while the page watches, so the rate charts have a shape
            for _ in range(4):
                site.relay()
                site.bait()
                site.deferred()
                time.sleep(0.7)
            b.wait_js("return document.getElementById('rate-total').textContent !== '0.00'", 4, what="a rate")
        if CHARTS[page]:
            drawn = wait_until(lambda: len(b.canvases_drawn()) == CHARTS[page] and all(b.canvases_drawn()),
                               5, what="%s: %d charts drawn (got %r)" % (page, CHARTS[page], b.canvases_drawn()))
            assert drawn
        time.sleep(1.6 if page == "index.html" else 0.3)   # one more poll of the Live page
        assert b.problems() == [], "%s: %s" % (page, b.problems())
        b.screenshot(page.replace(".html", ""))
    assert {p.replace(".html", ".png") for p in PAGES} <= set(os.listdir(SCREENSHOTS))


PERF_JS = """
    const nav = performance.getEntriesByType('navigation')[0];
    const all = [nav].concat(performance.getEntriesByType('resource'));
    return {load_ms: nav.loadEventEnd - nav.startTime,
            dom_ms: nav.domContentLoadedEventEnd - nav.startTime,
            transfer_bytes: all.reduce((a, e) => a + (e.transferSize || 0), 0),
            decoded_bytes: all.reduce((a, e) => a + (e.decodedBodySize || 0), 0),
            requests: all.length};"""


def test_live_page_load_time_and_bytes(start_site, browser):
    """Measured with the browser's Performance API, first in a fresh profile, then a second load
    (the browser may reuse what it cached); printed and written beside the screenshots."""
    site = start_site()
    b = browser()
    lines, figures = [], {}
    for visit in ("first", "second"):
        b.open(site.url)
        ready(b, "index.html")
        m = b.wait_js("const m = (() => {%s})(); return m.load_ms > 0 ? m : null;" % PERF_JS, 5,
                      what="the load event")
        figures[visit] = m
        lines.append("live page, %s load: %.0f ms to the load event (DOMContentLoaded %.0f ms), %d requests, "
                     "%d bytes transferred (%d decoded)" % (visit, m["load_ms"], m["dom_ms"], m["requests"],
                                                             m["transfer_bytes"], m["decoded_bytes"]))
        assert b.problems() == []
    assert figures["first"]["transfer_bytes"] > 50000, figures     # uPlot alone is 51 kB
    time.sleep(3.2)                                                 # two more polls
    polls = b.js("return performance.getEntriesByType('resource').filter(e => e.name.endsWith('/api/live'))"
                 ".map(e => e.transferSize)")
    assert len(polls) >= 3, polls
    figures["poll_bytes"] = max(polls)
    lines.append("then one GET /api/live every 1.5 s: at most %d bytes each" % max(polls))
    print("\n".join(lines))
    os.makedirs(SCREENSHOTS, exist_ok=True)
    with open(os.path.join(SCREENSHOTS, "live-performance.txt"), "w") as f:
        f.write("\n".join(lines) + "\n" + json.dumps(figures, sort_keys=True) + "\n")


def test_live_counters_show_new_sessions_within_3s(start_site, browser):
    site = start_site()
    b = browser()
    b.open(site.url)
    ready(b, "index.html")
    before = {k: live_count(b, *k) for k in (("primary", "relay"), ("bait", "tempfail"), ("primary", "tempfail"))}
    primary_before = int(b.text("count-primary"))
    send_known_sessions(site)
    sent = time.monotonic()
    want = {("primary", "relay"): 3, ("bait", "tempfail"): 2, ("primary", "tempfail"): 1}

    def shown():
        return all(live_count(b, *k) - before[k] == n for k, n in want.items())
    wait_until(shown, LIVE_DEADLINE_S, interval=0.1,
               what="Live counters +%r (page shows %r, before %r)" % (
                   want, {k: live_count(b, *k) for k in want}, before))
    took = time.monotonic() - sent
    print("live counters caught up %.2f s after the last session" % took)
    assert took < LIVE_DEADLINE_S
    assert b.text("count-primary") == str(primary_before + 4)
    assert b.problems() == []


def test_history_page_shows_the_sessions(start_site, browser):
    site = start_site()
    send_known_sessions(site)
    site.dash_db.dbw.wait_rows(6)
    b = browser()
    b.open(site.url + "history.html")
    ready(b, "history.html")
    rows = b.js("return Array.from(document.querySelectorAll('#daily-rows tr.daily-row'))"
                ".map(tr => Array.from(tr.children).map(td => td.textContent))")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    got = {(r[1], r[2], r[3]): int(r[4]) for r in rows if r[0] == today}
    # the same figures as the view (the daemon's start-up probe of each tier address is a session too) ...
    db = site.dash_db.reader_rows("SELECT appliance, tier, verdict, sum(sessions)::int AS n FROM dash_sessions_daily "
                                  "WHERE day = (now() AT TIME ZONE 'UTC')::date GROUP BY 1, 2, 3")
    assert got == {(r["appliance"], r["tier"], r["verdict"]): r["n"] for r in db}, (rows, db)
    # ... holding the test's own sessions
    assert got[("A", "primary", "relay")] == 3 and got[("A", "primary", "tempfail")] == 1, got
    assert got[("A", "bait", "tempfail")] >= 2, got
    day = b.js("const tr = document.querySelector('#day-rows tr[data-day]'); "
               "return tr ? Array.from(tr.children).map(td => td.textContent) : null")
    total = sum(got.values())
    stopped = total - got[("A", "primary", "relay")]
    assert day[:3] == [today, str(total), str(stopped)], day
    assert all(b.canvases_drawn())
    assert b.problems() == []


def test_sender_page_explains_a_deferred_client(start_site, browser):
    site = start_site()
    site.wait_logged([site.deferred("127.0.0.3")])
    site.dash_db.dbw.wait_rows(1)
    b = browser()
    b.open(site.url + "sender.html")
    b.wait_js("return document.getElementById('who').textContent.length > 0", what="session loaded")
    b.driver.find_element("id", "q").send_keys("127.0.0.3")
    b.driver.find_element("css selector", "#ask button").click()
    ready(b, "sender.html")
    contacts = b.js("return Array.from(document.querySelectorAll('#contact-rows tr.contact'))"
                    ".map(tr => Array.from(tr.children).map(td => td.textContent))")
    assert contacts and contacts[0][1:4] == ["A", "primary", "tempfail"], contacts
    assert "helo-invalid" in contacts[0][4], contacts
    advice = b.text("advice")
    assert advice and advice != "nothing recorded for this sender", advice
    assert "sender.html?q=127.0.0.3" in b.driver.current_url
    assert all(b.canvases_drawn())
    assert b.problems() == []
    b.screenshot("sender-deferred")


def test_listings_page_block_lands_in_the_database(start_site, browser):
    site = start_site()
    db = site.dash_db
    b = browser()
    b.open(site.url + "listings.html")
    ready_js = "return document.getElementById('who').textContent.length > 0"
    b.wait_js(ready_js, what="session loaded")
    b.driver.find_element("id", "address").send_keys("192.0.2.99")
    b.driver.find_element("id", "ttl").send_keys("2h")
    b.driver.find_element("id", "add-button").click()
    b.wait_js("return document.getElementById('status').className.includes('ok')", what="add confirmed")
    rows = wait_until(lambda: db.dbw.rows("SELECT network::text, kind, set_by, "
                                          "round(extract(epoch FROM expires_at - now()))::int AS ttl "
                                          "FROM listings WHERE network = '192.0.2.99/32'"), 3, what="listing row")
    assert rows[0]["kind"] == "block" and rows[0]["set_by"] == "local", rows
    assert 7000 < rows[0]["ttl"] <= 7200, rows
    b.wait_js("return document.querySelector('#block-rows tr[data-address^=\"192.0.2.99\"]') !== null",
              what="the block in the page's list")
    b.screenshot("listings-added")
    b.driver.find_element("css selector", "#block-rows tr[data-address^='192.0.2.99'] button.remove").click()
    wait_until(lambda: db.dbw.count("SELECT * FROM listings WHERE network = '192.0.2.99/32'") == 0, 3,
               what="listing removed")
    assert b.problems() == []


class _Attacker(BaseHTTPRequestHandler):
    """A page on another origin that tries to add a block on the dashboard."""
    target = None

    def do_GET(self):
        page = ("<!doctype html><html><head><link rel='icon' href='data:,'></head><body>"
                "<form id='f' method='POST' enctype='text/plain' action='%sapi/listings'>"
                "<input name='{\"action\":\"add\",\"list\":\"block\",\"address\":\"192.0.2.66\",\"x\":\"' value='\"}'>"
                "</form><script>fetch('%sapi/listings', {method: 'POST', mode: 'no-cors', credentials: 'include',"
                "body: JSON.stringify({action: 'add', list: 'block', address: '192.0.2.67'})}).finally(() =>"
                "document.getElementById('f').submit());</script></body></html>" % (self.target, self.target))
        body = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_unauthenticated_and_cross_site_requests_are_refused(start_site, browser, workdir):
    tokens = os.path.join(workdir, "tokens")
    with open(tokens, "w") as f:
        f.write("# name:token\nalice:t0ken-for-alice-0123456789\n")
    os.chmod(tokens, 0o644)
    site = start_site(http_token_file=tokens)
    good = bearer("t0ken-for-alice-0123456789")
    for path in ("", "index.html", "api/live", "api/session", "api/listings", "metrics"):
        assert http(site.url + path)[0] == 401, path
    for path in ("api/live", "index.html"):          # 2 failed logins: below the limit of 5
        assert http(site.url + path, headers=bearer("wrong"))[0] == 401, path
    status, _, s = http(site.url + "api/session", headers=good)
    assert status == 200 and s["user"] == "alice", s
    add = {"action": "add", "list": "block", "address": "192.0.2.65"}
    assert http(site.url + "api/listings", "POST", add)[0] == 401
    assert http(site.url + "api/listings", "POST", add, headers=good)[0] == 403          # no CSRF token
    hdr = dict(good, **{"X-CSRF-Token": s["csrf"], "Origin": "http://evil.test"})
    assert http(site.url + "api/listings", "POST", add, headers=hdr)[0] == 403            # cross-site
    assert http(site.url + "api/listings", "POST", add, headers=dict(good, **{"X-CSRF-Token": "0" * 64}))[0] == 403

    # A browser without credentials gets nothing but the 401.
    b = browser()
    b.open(site.url)
    assert b.js("return document.getElementById('status')") is None
    # With them (as a browser that logged in), a page on another origin cannot add a block.
    b2 = browser(auth_header="Bearer t0ken-for-alice-0123456789")
    b2.open(site.url)
    ready(b2, "index.html")
    assert b2.problems() == []
    _Attacker.target = site.url
    evil = ThreadingHTTPServer(("127.0.0.1", free_port()), _Attacker)
    t = threading.Thread(target=evil.serve_forever, daemon=True)
    t.start()
    try:
        b2.open("http://127.0.0.1:%d/" % evil.server_address[1])
        wait_until(lambda: "api/listings" in b2.driver.current_url, 5, what="the attacker's form posted")
        time.sleep(0.5)
    finally:
        evil.shutdown()
        evil.server_close()
    status, _, lists = http(site.url + "api/listings", headers=good)
    assert status == 200
    listed = [x["address"] for x in lists["block"]] + [x.get("network") for x in lists.get("database", [])]
    assert not any(a and a.startswith(("192.0.2.65", "192.0.2.66", "192.0.2.67")) for a in listed), lists
    assert "cross-site" in b2.driver.page_source or "csrf" in b2.driver.page_source

    # Failed logins are rate-limited: after 5 within 60 s even the right token gets 429.
    for _ in range(3):
        http(site.url + "api/live", headers=bearer("wrong"))
    assert http(site.url + "api/live", headers=good)[0] == 429


def test_without_a_database_live_works_and_history_says_what_to_configure(start_backend, start_daemon, browser):
    from dashlib import WEB, Site, http_missing, http_up
    import pytest
    why = http_missing()
    if why:
        pytest.skip(why)
    port = free_port()
    d = start_daemon(start_backend(), http_listen="127.0.0.1:%d" % port, dashboard_dir=WEB)
    site = Site(d, None, port)
    wait_until(lambda: http_up(site.url), 10, what="GET /healthz")
    b = browser()
    b.open(site.url)
    ready(b, "index.html")
    site.wait_logged([site.relay()])
    b.wait_js("return document.getElementById('count-primary-relay').textContent === '1'", LIVE_DEADLINE_S,
              what="the relayed session on the Live page")
    assert b.text("db-state") == "off"
    assert b.problems() == []
    b.open(site.url + "history.html")
    b.wait_js("return !document.getElementById('no-database').hidden", 5, what="the no-database notice")
    assert b.driver.find_element("id", "no-database").is_displayed()
    assert not b.driver.find_element("id", "history").is_displayed()      # no empty charts under the notice
    assert not b.driver.find_element("id", "controls").is_displayed()
    notice = b.text("no-database")
    assert "dashboard_database" in notice and "mxtier_reader" in notice, notice
    # the one expected failure: the server's 503 that the page explains
    assert b.problems(allow=("/api/history",)) == []
    b.screenshot("history-no-database")
