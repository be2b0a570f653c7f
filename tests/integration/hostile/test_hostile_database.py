"""Hostile values and the database (issue 6, hostile-input suite).

With `database` set, every session is one row of `sessions`.  Clients try
CR, LF and NUL in the HELO, MAIL and RCPT values (refused on the wire, or
split into lines of their own) together with SQL and quoting characters
(stored as they are): every session is exactly one row, no stored value
holds CR, LF or NUL, and what was accepted is stored byte for byte.
Needs root and the PostgreSQL 15 binaries (skipped otherwise, like ../db).
"""

import time

from dblib import dbw, pg  # noqa: F401 (fixtures)
from harness import wait_until
from hostile_lib import malformed_log_lines

# label, lines sent (each CRLF-terminated), the HELO and MAIL FROM stored
SESSIONS = [
    ("sql-helo-cr-mail", [b"EHLO x');DROP/**/TABLE/**/sessions;--", b"EHLO a.example\rMAIL FROM:<inj@evil.example>",
                          b"MAIL FROM:<o'brien@example.org>"],
     "x');DROP/**/TABLE/**/sessions;--", "o'brien@example.org"),
    ("nul-in-helo", [b"EHLO ok1.example", b"EHLO evil\x00');DELETE/**/FROM/**/sessions;--",
                     b"MAIL FROM:<a@example.org>"], "ok1.example", "a@example.org"),
    ("lf-in-helo-splits", [b"EHLO ok2.example\nINSERT INTO sessions VALUES (1)", b"MAIL FROM:<b@example.org>"],
     "ok2.example", "b@example.org"),
    ("quoted-local-part", [b"EHLO a\\b'c\"d.example", b'MAIL FROM:<"x\\\\y\\"z;$$"@example.org>'],
     "a\\b'c\"d.example", '"x\\\\y\\"z;$$"@example.org'),
    ("cr-in-mail", [b"EHLO ok3.example", b"MAIL FROM:<c\r@example.org>", b"MAIL FROM:<%_%@example.org>"],
     "ok3.example", "%_%@example.org"),
    ("nul-in-rcpt", [b"EHLO ok4.example", b"MAIL FROM:<d@example.org>", b"RCPT TO:<e\x00'@example.org>"],
     "ok4.example", "d@example.org"),
]


def test_hostile_values_in_the_database(dbw, backend, connect):  # noqa: F811
    d = dbw.start_daemon(backend, appliance="hostile", allow_networks="127.0.11.0/24")
    sent = {}
    for i, (label, lines, helo, mail_from) in enumerate(SESSIONS):
        c = connect(d, source="127.0.11.%d" % (i + 1))
        assert c.greeting().code == 220
        for line in lines:
            c.send(line + b"\r\n")
        c.send(b"QUIT\r\n")
        replies = []
        while not replies or replies[-1].code != 221:
            replies.append(c.read_reply())
        sent[c.local[0]] = (label, helo, mail_from, d.session_for(c))
    clients = set(sent)
    wait_until(lambda: {r["client"] for r in dbw.rows("SELECT client FROM sessions")} >= clients, 10,
               what="a row for every hostile session")
    time.sleep(0.3)
    rows = [r for r in dbw.rows("SELECT * FROM sessions") if r["client"] in clients]
    assert sorted(r["client"] for r in rows) == sorted(clients), rows      # one row each, none injected
    assert dbw.value("SELECT to_regclass('sessions') IS NOT NULL") == "t"
    for row in rows:
        label, helo, mail_from, log = sent[row["client"]]
        for key, value in row.items():
            if isinstance(value, str):
                assert not any(ch in value for ch in "\r\n\x00"), (label, key, value)
        assert row["helo"] == helo, (label, row["helo"], helo)
        assert row["mail_from"] == mail_from, (label, row["mail_from"], mail_from)
        assert row["session_id"] == log["id"], (label, row, log)
    # every session in the log is one row, and there is no other row
    ids = sorted(s["id"] for s in d.sessions())
    wait_until(lambda: dbw.count("SELECT * FROM sessions") >= len(ids), 5, what="all rows")
    assert sorted(r["session_id"] for r in dbw.rows("SELECT session_id FROM sessions")) == ids
    assert malformed_log_lines(d) == []
