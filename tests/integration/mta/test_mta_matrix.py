"""The MTA matrix: four real sending MTAs of Debian 12 -- Postfix 3.7, Exim 4.96,
OpenSMTPD 6.8, Sendmail 8.17 (senders.py) -- deliver to tiers.test, whose MX
10/20/30 are mxtierd's primary/secondary/bait, with the DNS checks on and the
test DNS server answering (see conftest.py for the environment).  mxtierd
listens on port 25 here (not the 2525 of test_postfix_mx.py): OpenSMTPD has
no way to send to another port and keep the MX lookup.

Cases, each for every MTA:

  clean-primary      forward-confirmed sender: delivered at the primary, first attempt
  no-ptr-secondary   sender without PTR: 421 at the primary's greeting, MX 20 in the
                     same attempt (relayed there as `retried`), in under 5 s
  missing-secondary  sender without PTR, nothing listening at MX 20: deferred once,
                     delivered at the primary (`retried`) on the next queue run
  misordered-mx      the bait at MX 10: the message is never bounced (no DSN); it stays
                     queued or is delivered later
  exactly-once       several messages: each reaches the backend exactly once

Every case also checks that the backend got each delivered message once and
that no DSN was generated (the envelope sender's domain, bounce.test, has a
recording backend as its MX).  Retry timers are compressed (Postfix 5 s,
Exim F,5m,5s with a 5 s queue runner, Sendmail -q5s with MinQueueAge 0);
OpenSMTPD's are compiled in, so its next queue run is `smtpctl schedule all`.
Each test adds one line (tiers contacted, time to delivery, backend copies) to
the matrix printed at the end of the run and written to
$MXTIER_BUILD/mta-matrix.txt.
"""

import datetime
import time

import pytest

from mta_harness import BAIT, DOMAIN, GOOD_CLIENT, NO_RDNS_CLIENT, PRIMARY, SECONDARY
from senders import BOUNCE_DOMAIN, SENDERS

MTA_ORDER = ["postfix", "exim", "opensmtpd", "sendmail"]
CASES = ["clean-primary", "no-ptr-secondary", "missing-secondary", "misordered-mx", "exactly-once"]

RCPT = "user@" + DOMAIN
SENDER = "alice@" + BOUNCE_DOMAIN
NOWHERE = "127.0.0.13"          # an MX address nothing listens on
RETRY_MIN_DELAY = 2.0
RULES = dict(listen_port="25", greet_wait="1s", dns_checks="yes", dns_servers="127.0.0.1:53",
             retry_window="1h", retry_min_delay="%ds" % RETRY_MIN_DELAY)
TIER_ADDRS = (PRIMARY, SECONDARY, BAIT)
BEHAVIOUR_BLOCKS = ("bait-first-contact", "hit-and-run")


def poll(predicate, timeout, interval=0.05):
    """poll - predicate's first true value within timeout, else None (no exception: the
    tests record what happened before they assert)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def established_at_tiers():
    """established_at_tiers - open server-side TCP connections on the tier addresses' port 25
    (this thread is in the test's namespace)."""
    want = set("%s:0019" % "".join("%02X" % int(b) for b in reversed(a.split("."))) for a in TIER_ADDRS)
    n = 0
    with open("/proc/thread-self/net/tcp") as f:
        for line in f.readlines()[1:]:
            parts = line.split()
            if parts[1] in want and parts[3] == "01":
                n += 1
    return n


def timed_sessions(d):
    """timed_sessions - mxtierd's session lines of real clients in the order they began
    (log time minus duration: lines are written when a session ends)."""
    from harness import parse_session_line
    out = []
    for line in d.stderr().splitlines():
        s = parse_session_line(line)
        if not s or s.get("client", "").startswith("127.0.0.1:"):
            continue
        try:
            end = datetime.datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
        except ValueError:
            end = 0.0
        s["start"] = end - float(s.get("duration") or 0)
        out.append(s)
    # Log times and durations are whole milliseconds: a session that began in
    # the millisecond another ended ties with it, and the id (given at accept,
    # rising) says which came first.
    return sorted(out, key=lambda s: (round(s["start"], 3), s.get("id", "")))


class Run:
    """Run - one MTA x case: the children, what was sent, what happened."""

    def __init__(self, mta, row, case, kind, client, mx=None, **config):
        cls = SENDERS[kind]
        self.kind, self.label, self.case = kind, cls.label, case
        row.update(mta=kind, label=cls.label, case=case, order=(MTA_ORDER.index(kind), CASES.index(case)))
        why = cls.why_unavailable()
        if why:
            row["note"] = why
            pytest.skip("%s: %s" % (cls.label, why))
        if mx:
            mta.dns.mx(DOMAIN, mx).commit()
        self.backend = mta.start_backend()
        self.bounces = mta.start_bounce_sink()
        self.d = mta.start_mxtierd(self.backend, **dict(RULES, **config))
        self.sender = mta.start_sender(kind, client)
        self.msgids = []
        self.t0 = None
        self.sessions = []
        self.queued = None

    def send(self, **kw):
        if self.t0 is None:
            self.t0 = time.monotonic()
        msgid = self.sender.send(RCPT, SENDER, **kw)
        self.msgids.append(msgid)
        return msgid

    def copies(self, msgid):
        return sum(1 for _c, _m, data in self.backend.messages() if msgid.encode() in data)

    def dsns(self):
        return len(self.bounces.mail_connections())

    def outcomes(self):
        return self.sender.outcomes(RCPT)

    def kinds(self):
        return [k for k, _line in self.outcomes()]

    def wait_delivered(self, msgid, timeout):
        """wait_delivered - seconds from the first send until the backend had the message."""
        if poll(lambda: self.copies(msgid) >= 1, timeout):
            return time.monotonic() - self.t0
        return None

    def wait_outcomes(self, n, timeout):
        poll(lambda: len(self.outcomes()) >= n, timeout)
        return self.kinds()

    def finish(self, row, elapsed, note=""):
        """finish - stop the sender (its cached connections close), collect mxtierd's session
        lines, fill the matrix row."""
        if self.kinds() and self.kinds()[-1] == "sent":
            poll(lambda: self.sender.queue_count() == 0, 2)     # logged just before the unlink
        self.queued = self.sender.queue_count()
        self.sender.stop()
        poll(lambda: established_at_tiers() == 0, 10)
        time.sleep(0.3)
        self.sessions = timed_sessions(self.d)
        copies = [self.copies(m) for m in self.msgids]
        kinds = self.kinds()
        row.update(tiers=" > ".join("%s:%s" % (s["tier"], s["verdict"]) for s in self.sessions) or "-",
                   time=elapsed, copies=",".join(map(str, copies)),
                   note=("%s; queued %d; dsn %d %s" % ("/".join(kinds) or "-", self.queued,
                                                         self.dsns(), note)).strip())
        return copies

    def tiers(self):
        return [(s["tier"], s["verdict"]) for s in self.sessions]

    def why(self):
        return "\n".join(["outcomes:"] + ["  " + line for _k, line in self.outcomes()] +
                         ["sessions:"] + ["  %s %s %s reasons=%s" % (s["tier"], s["client"], s["verdict"],
                                                                      s.get("reasons")) for s in self.sessions])


@pytest.mark.parametrize("kind", MTA_ORDER)
def test_clean_sender_is_delivered_at_the_primary_in_the_first_attempt(mta, matrix_row, kind):
    """(1) good.sender.test (forward-confirmed rDNS): one session at the primary, relayed."""
    r = Run(mta, matrix_row, "clean-primary", kind, GOOD_CLIENT)
    msgid = r.send()
    elapsed = r.wait_delivered(msgid, 15)
    r.wait_outcomes(1, 15)
    copies = r.finish(matrix_row, elapsed)

    assert elapsed is not None, "%s did not deliver %s\n%s" % (r.label, msgid, r.why())
    assert r.kinds() == ["sent"], "%s: not delivered in its first attempt\n%s" % (r.label, r.why())
    assert r.tiers() == [("primary", "relay")], r.why()
    assert "retried" not in r.sessions[0]["reason_list"], r.sessions[0]
    assert copies == [1], "backend copies of %s: %s\n%s" % (msgid, copies, r.why())
    assert r.dsns() == 0


@pytest.mark.parametrize("kind", MTA_ORDER)
def test_sender_without_ptr_is_delivered_via_the_secondary_in_the_first_attempt(mta, matrix_row, kind):
    """(2) no PTR: 421 at the primary's greeting (no-rdns); the MTA walks to MX 20 in the
    same attempt, where mxtierd relays it as retried -- all in under 5 s."""
    r = Run(mta, matrix_row, "no-ptr-secondary", kind, NO_RDNS_CLIENT)
    msgid = r.send()
    elapsed = r.wait_delivered(msgid, 15)
    r.wait_outcomes(1, 15)
    copies = r.finish(matrix_row, elapsed)

    assert elapsed is not None, "%s did not deliver %s\n%s" % (r.label, msgid, r.why())
    assert r.kinds() == ["sent"], "%s: not delivered in its first attempt\n%s" % (r.label, r.why())
    assert r.tiers() == [("primary", "tempfail"), ("secondary", "relay")], r.why()
    first, second = r.sessions
    assert "no-rdns" in first["reason_list"], first
    assert "retried" in second["reason_list"], second
    assert first["client"].rsplit(":", 1)[0] == second["client"].rsplit(":", 1)[0] == NO_RDNS_CLIENT
    assert elapsed < 5, "%s took %.1fs to reach the backend through MX 20" % (r.label, elapsed)
    assert copies == [1], "backend copies of %s: %s\n%s" % (msgid, copies, r.why())
    assert r.dsns() == 0


@pytest.mark.parametrize("kind", MTA_ORDER)
def test_missing_secondary_is_delivered_at_the_primary_on_the_next_queue_run(mta, matrix_row, kind):
    """(3) no PTR and nothing listening at MX 20: the first attempt is deferred (primary 421,
    MX 20 refused, the bait 4xx); the next queue run starts at the primary again, which now
    relays the client as retried (pending retry older than retry_min_delay)."""
    r = Run(mta, matrix_row, "missing-secondary", kind, NO_RDNS_CLIENT, mx={
        "mx10.tiers.test": (10, PRIMARY),
        "mx20.tiers.test": (20, NOWHERE),
        "mx30.tiers.test": (30, BAIT),
    })
    msgid = r.send()
    first = r.wait_outcomes(1, 20)
    if first and first[0] == "deferred" and kind == "opensmtpd":
        # OpenSMTPD's first retry is 400 s away (compiled in): the next queue run, by hand
        # (kick waits for the routes it suspended for 15 s after the errors)
        time.sleep(RETRY_MIN_DELAY + 0.5)
        r.sender.kick()
    elapsed = r.wait_delivered(msgid, 25)
    r.wait_outcomes(2, 10)
    copies = r.finish(matrix_row, elapsed)

    assert first and first[0] == "deferred", "%s: first attempt not deferred\n%s" % (r.label, r.why())
    assert elapsed is not None, "%s did not deliver %s\n%s" % (r.label, msgid, r.why())
    assert r.kinds() == ["deferred", "sent"], \
        "%s: not delivered on the next queue run\n%s" % (r.label, r.why())
    assert r.tiers()[0] == ("primary", "tempfail") and r.tiers()[-1] == ("primary", "relay"), r.why()
    assert "no-rdns" in r.sessions[0]["reason_list"], r.sessions[0]
    assert "retried" in r.sessions[-1]["reason_list"], r.sessions[-1]
    assert not [s for s in r.sessions if set(s["reason_list"]) & set(BEHAVIOUR_BLOCKS)], r.why()
    assert copies == [1], "backend copies of %s: %s\n%s" % (msgid, copies, r.why())
    assert r.dsns() == 0


@pytest.mark.parametrize("kind", MTA_ORDER)
def test_misordered_mx_never_bounces_the_message(mta, matrix_row, kind):
    """(4) the bait at MX 10 (a DNS mistake): a real MTA's first contact is the bait and
    mxtierd blocks it (bait-first-contact); the message must stay queued (or be delivered
    later) -- never bounced, no DSN.  Two attempts are watched."""
    r = Run(mta, matrix_row, "misordered-mx", kind, GOOD_CLIENT, mx={
        "mx10.tiers.test": (10, BAIT),
        "mx20.tiers.test": (20, PRIMARY),
        "mx30.tiers.test": (30, SECONDARY),
    })
    msgid = r.send()
    first = r.wait_outcomes(1, 20)
    if first and "bounced" not in first and first[-1] != "sent":
        if kind == "opensmtpd":
            r.sender.kick()
        r.wait_outcomes(len(first) + 1, 15)
    if "bounced" in r.kinds():
        poll(lambda: r.dsns() > 0, 5)       # let the DSN arrive, for the record
    delivered_at = r.wait_delivered(msgid, 0)
    copies = r.finish(matrix_row, delivered_at)

    assert first, "%s: no delivery attempt finished\n%s" % (r.label, r.why())
    assert "bounced" not in r.kinds(), "%s bounced the message\n%s" % (r.label, r.why())
    assert r.dsns() == 0, "%s sent %d DSN(s) to %s" % (r.label, r.dsns(), SENDER)
    assert r.queued >= 1 or copies == [1], \
        "message neither queued nor delivered (queued %d, copies %s)\n%s" % (r.queued, copies, r.why())
    assert copies[0] <= 1, copies
    assert r.sessions and r.sessions[0]["tier"] == "bait", r.why()


@pytest.mark.parametrize("kind", MTA_ORDER)
def test_every_message_reaches_the_backend_exactly_once(mta, matrix_row, kind):
    """(5) three messages from a clean sender: each Message-ID is at the backend exactly
    once, and the MTA's queue is empty (it took every end-of-data reply as final)."""
    r = Run(mta, matrix_row, "exactly-once", kind, GOOD_CLIENT)
    for i in range(3):
        r.send(subject="mxtier MTA matrix %d" % (i + 1))

    def done():
        return all(r.copies(m) >= 1 for m in r.msgids) and r.sender.queue_count() == 0 and \
            r.kinds().count("sent") >= len(r.msgids)
    poll(done, 20)
    last = max((r.wait_delivered(m, 0) or 0) for m in r.msgids) or None
    copies = r.finish(matrix_row, last)

    assert copies == [1] * len(r.msgids), "backend copies per Message-ID: %s\n%s" % (
        dict(zip(r.msgids, copies)), r.why())
    assert r.queued == 0, "%s still holds %d message(s)\n%s" % (r.label, r.queued, r.why())
    assert r.kinds().count("sent") == len(r.msgids) and "deferred" not in r.kinds(), r.why()
    assert r.dsns() == 0
