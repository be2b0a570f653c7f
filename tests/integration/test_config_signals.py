"""The command line (-t, -n) and signals (SIGHUP reload, SIGTERM/SIGINT)."""

import os
import re
import signal
import socket
import subprocess
import time

import pytest

from harness import (BAIT, BASE_CONFIG, HOSTNAME, MXTIERD, PRIMARY, SECONDARY, TOP,
                     port_accepts, wait_until)

MESSAGE = b"Subject: signals\r\n\r\nbody\r\n"


def write_config(path, lines):
    with open(path, "w") as f:
        f.write("".join(l + "\n" for l in lines))


def base_lines(port=2525):
    lines = ["# mxtierd test config", ""]
    lines += ["%s = %s" % kv for kv in BASE_CONFIG.items()]
    lines += ["listen_port = %d" % port, "backend = 127.0.0.1:10025"]
    return lines


def run(*args, timeout=10):
    if not os.access(MXTIERD, os.X_OK):
        raise AssertionError("%s is not built (run make)" % MXTIERD)
    return subprocess.run([MXTIERD] + list(args), capture_output=True, text=True, timeout=timeout)


BAD_CONFIGS = [
    ("unknown-key", "bogus_key = 1", "bogus_key"),
    ("port-too-big", "listen_port = 70000", "listen_port"),
    ("port-not-a-number", "listen_port = 25x", "listen_port"),
    ("duration-bad-unit", "greet_wait = 5x", "greet_wait"),
    ("duration-not-a-number", "data_timeout = soon", "data_timeout"),
    ("duration-over-bound", "command_timeout = 2h", "command_timeout"),
    ("greet-wait-over-60s", "greet_wait = 61s", "greet_wait"),
    ("session-timeout-under-10s", "session_timeout = 5s", "session_timeout"),
    ("enum-unknown-value", "backend_client_info = smtp", "backend_client_info"),
    ("address-out-of-range", "primary_ips = 127.0.0.300", "primary_ips"),
    ("address-is-a-name", "bait_ips = mx3.example.org", "bait_ips"),
    ("cidr-prefix-too-long", "allow_networks = 10.0.0.0/33", "allow_networks"),
    ("cidr-garbage", "block_networks = 10.0.0.0/8, banana", "block_networks"),
    ("size-bad-unit", "message_size_limit = 10x", "message_size_limit"),
    ("size-under-1k", "message_size_limit = 512", "message_size_limit"),
    ("backend-without-port", "backend = 127.0.0.1", "backend"),
    ("max-recipients-under-100", "max_recipients = 99", "max_recipients"),
    ("negative-integer", "max_errors = -1", "max_errors"),
    ("integer-overflow", "max_sessions = 99999999999999999999", "max_sessions"),
]


@pytest.mark.parametrize("bad_line, key", [b[1:] for b in BAD_CONFIGS], ids=[b[0] for b in BAD_CONFIGS])
def test_check_mode_names_file_line_and_key(workdir, bad_line, key):
    path = os.path.join(workdir, "bad.conf")
    lines = base_lines()
    lines.insert(4, bad_line)                 # in the middle: line 5
    write_config(path, lines)
    out = run("-c", path, "-t")
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    assert "%s:5: %s:" % (path, key) in out.stdout + out.stderr, out.stdout + out.stderr


@pytest.mark.parametrize("tier_addr", [PRIMARY, SECONDARY, BAIT])
def test_check_mode_refuses_a_backend_that_is_a_tier_listener(workdir, tier_addr):
    """backend = one of our own tier addresses on listen_port: a relay loop."""
    path = os.path.join(workdir, "loop.conf")
    lines = [l for l in base_lines(port=2525) if not l.startswith("backend =")]
    lines.insert(3, "backend = %s:2525" % tier_addr)
    write_config(path, lines)
    out = run("-c", path, "-t")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "%s:4: backend:" % path in out.stdout + out.stderr, out.stdout + out.stderr
    assert "relay loop" in out.stdout + out.stderr
    # the same address on another port is another service: accepted
    lines[3] = "backend = %s:10025" % tier_addr
    write_config(path, lines)
    assert run("-c", path, "-t").returncode == 0


def test_check_mode_accepts_a_good_config(workdir):
    path = os.path.join(workdir, "good.conf")
    lines = [l for l in base_lines() if not l.startswith("primary_ips")]
    lines += ["allow_networks = 10.0.0.0/8 192.0.2.0/24,2001:db8::/32",
              "primary_ips = 127.0.0.10, ::1   # a comment after a value",
              "   # an indented comment", "message_size_limit = 2m", "max_sessions = 5000"]
    write_config(path, lines)
    out = run("-c", path, "-t")
    assert out.returncode == 0, out.stdout + out.stderr


def test_print_mode_shows_every_effective_value(workdir):
    path = os.path.join(workdir, "n.conf")
    write_config(path, base_lines(port=2626) + ["backend_client_info = proxy_v2", "max_errors = 7"])
    out = run("-c", path, "-n")
    assert out.returncode == 0, out.stderr
    values = {}
    for line in out.stdout.splitlines():
        key, sep, value = line.partition(" = ")
        if sep:
            values[key.strip()] = value.strip()
    assert values["listen_port"] == "2626"
    assert values["backend"] == "127.0.0.1:10025"
    assert values["backend_client_info"] == "proxy_v2"
    assert values["hostname"] == HOSTNAME
    assert values["max_errors"] == "7"
    assert values["max_recipients"] == "100"            # default
    assert values["max_sessions"] == "1000"             # default
    assert PRIMARY in values["primary_ips"] and BAIT in values["bait_ips"]


# -- the key table in proxy/config/config.c, mxtierd -n and docs/engine.md agree -------

CONFIG_KEY_ROW = re.compile(r'^\s*\{\s*"(\w+)",\s*(CT_\w+),\s*OFF\([^)]*\),\s*"([^"]*)",\s*([^,]+),\s*([^,]+),', re.M)
# the unit macros the table's bounds are written with (proxy/config/config.c), in ms and bytes
BOUND_UNITS = {"SEC": 1000, "MIN": 60000, "HOUR": 3600000, "DAY": 86400000,
               "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30}
NUMERIC_TYPES = ("CT_INT", "CT_DURATION", "CT_SIZE", "CT_DECIMAL")
DOC_TABLE_HEADER = "| key | type | default | bounds / values |"
# The two defaults that are derived at load time, not written in the table:
# key -> (the table's default, the documented default, the effective value from the -n values)
DERIVED_DEFAULTS = {
    "hostname": ("", "the system host name", lambda n: system_host_name()),
    "appliance_name": ("", "hostname", lambda n: n["hostname"]),
}


def system_host_name():
    """system_host_name - what config_finish takes for hostname: gethostname(), or localhost if not a DNS name."""
    name = socket.gethostname()
    if len(name) <= 255 and re.fullmatch(r"[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*\.?", name):
        return name
    return "localhost"


def table_bound(text):
    """table_bound - "10 * MIN", "HOUR", "100" as a number (ms for durations, bytes for sizes)."""
    n = 1
    for factor in text.split("*"):
        factor = factor.strip()
        n *= BOUND_UNITS[factor] if factor in BOUND_UNITS else int(factor)
    return n


def code_config_keys():
    """code_config_keys - [(key, CT_type, default text, min, max)] from config_keys[] in proxy/config/config.c."""
    with open(os.path.join(TOP, "proxy", "config", "config.c")) as f:
        text = f.read()
    start = text.index("config_keys[] = {")
    table = text[start:text.index("\n};", start)]
    rows = CONFIG_KEY_ROW.findall(table)
    # every entry of the table is a row the pattern understood
    assert len(rows) == table.count("CT_"), "config_keys[] rows not all parsed:\n%s" % table
    return [(k, t, d, table_bound(lo), table_bound(hi)) for k, t, d, lo, hi in rows]


def documented_keys():
    """documented_keys - {key: (default text, bounds text)} from every key table in docs/engine.md."""
    docs = {}
    with open(os.path.join(TOP, "docs", "engine.md")) as f:
        lines = f.read().splitlines()
    tables = 0
    for i, line in enumerate(lines):
        if line.strip() != DOC_TABLE_HEADER:
            continue
        tables += 1
        for row in lines[i + 2:]:
            if not row.startswith("|"):
                break
            cells = [c.strip() for c in row.strip().strip("|").split("|")]
            keys = [k.strip().strip("`") for k in cells[0].split(" / ")]
            defaults = [d.strip() for d in cells[2].split(" / ")] if len(keys) > 1 else [cells[2]]
            assert len(defaults) == len(keys), "docs row %r: one default per key" % row
            for key, default in zip(keys, defaults):
                assert key not in docs, "docs/engine.md documents %s twice" % key
                docs[key] = (default, cells[3] if len(keys) == 1 else "")
    assert tables >= 4, "docs/engine.md: the key tables were not found"
    return docs


def printed_values(path):
    """printed_values - (keys in order, {key: value}) of mxtierd -c path -n."""
    out = subprocess.run([MXTIERD, "-c", path, "-n"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stdout + out.stderr
    keys, values = [], {}
    for line in out.stdout.splitlines():
        key, sep, value = line.partition(" = ")
        assert sep, "-n line without ' = ': %r" % line
        keys.append(key)
        values[key] = value
    assert len(keys) == len(values), "-n prints a key twice: %s" % keys
    return keys, values


def documented_value(text):
    """documented_value - the value the docs' default column means: "(empty...)"/"(none)" = "", "0 (off)" = "0"."""
    if text.startswith("(empty") or text == "(none)":
        return ""
    return re.sub(r" \(off\)$", "", text).strip("`")


def comparable(ctype, text):
    """comparable - a value as config.c stores it: "0" and "0s", "6" and "6s", "0" and "0.00" compare equal."""
    text = text.strip()
    if ctype == "CT_DURATION":
        m = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", text)
        assert m, "not a duration: %r" % text
        return int(m.group(1)) * {"ms": 1, None: 1000, "s": 1000, "m": 60000, "h": 3600000,
                                  "d": 86400000}[m.group(2)]
    if ctype == "CT_SIZE":
        m = re.fullmatch(r"(\d+)([kmg])?", text)
        assert m, "not a size: %r" % text
        return int(m.group(1)) * {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2)]
    if ctype == "CT_INT":
        return int(text)
    if ctype == "CT_DECIMAL":
        return round(float(text) * 100)         # hundredths, as config.c stores it (and its bounds)
    return text


def test_config_keys_code_print_and_docs_agree(workdir):
    """Every key of config_keys[] is printed by -n and documented with its default, and no other key is."""
    code = code_config_keys()
    code_keys = [row[0] for row in code]
    assert len(code) >= 60 and len(set(code_keys)) == len(code_keys), code_keys

    # Nothing but the one required tier address is set: each key's value is its default.
    # primary_ips' own default comes from a second run that sets secondary_ips instead.
    path = os.path.join(workdir, "defaults.conf")
    write_config(path, ["primary_ips = %s" % PRIMARY])
    printed_keys, printed = printed_values(path)
    write_config(path, ["secondary_ips = %s" % SECONDARY])
    printed["primary_ips"] = printed_values(path)[1]["primary_ips"]
    assert printed_keys == code_keys, "-n and config_keys[] differ: only in -n %s, only in the table %s" % (
        sorted(set(printed_keys) - set(code_keys)), sorted(set(code_keys) - set(printed_keys)))

    docs = documented_keys()
    assert sorted(set(code_keys) - set(docs)) == [], "keys in config_keys[] missing from docs/engine.md"
    assert sorted(set(docs) - set(code_keys)) == [], "keys in docs/engine.md that config_keys[] does not have"

    wrong = []
    for key, ctype, default, low, high in code:
        doc_default, doc_bounds = docs[key]
        if doc_default == "":
            wrong.append("%s: no default in docs/engine.md" % key)
        elif key in DERIVED_DEFAULTS:
            table_default, doc_text, effective = DERIVED_DEFAULTS[key]
            if (default, doc_default, printed[key]) != (table_default, doc_text, effective(printed)):
                wrong.append("%s: table %r, docs %r, -n %r" % (key, default, doc_default, printed[key]))
        elif len({comparable(ctype, default), comparable(ctype, printed[key]),
                  comparable(ctype, documented_value(doc_default))}) != 1:
            wrong.append("%s: table %r, docs %r, -n %r" % (key, default, doc_default, printed[key]))
        # bounds the docs state as "LOW..HIGH" are the table's
        m = re.match(r"(\w+)\.\.(\w+)(?:[:\s]|$)", doc_bounds)
        if m and ctype in NUMERIC_TYPES:
            doc_range = (comparable(ctype, m.group(1)), comparable(ctype, m.group(2)))
            if doc_range != (low, high):
                wrong.append("%s: docs bounds %s..%s, table %d..%d" % (key, m.group(1), m.group(2), low, high))
    assert not wrong, "config_keys[], -n and docs/engine.md disagree:\n" + "\n".join(wrong)


def open_transaction(connect, d, host):
    c = connect(d, host=host)
    assert c.greeting().code == 220
    assert c.ehlo().code == 250
    assert c.cmd("MAIL FROM:<a@example.org>").code == 250
    assert c.cmd("RCPT TO:<b@example.org>").code == 250
    return c


def finish_transaction(c):
    assert c.cmd("DATA").code == 354
    c.send(MESSAGE + b".\r\n")
    r = c.read_reply()
    assert r.code == 250, r
    assert c.cmd("QUIT").code == 221


def greeting_at(d, host, source="127.0.0.3"):
    from harness import SmtpClient
    with SmtpClient(d.port, host=host, source=source) as c:
        return c.greeting()


def test_sighup_moves_a_tier_while_a_session_is_open(start_daemon, backend, connect):
    d = start_daemon(backend)
    c = open_transaction(connect, d, SECONDARY)
    d.reload({"secondary_ips": None, "bait_ips": "%s %s" % (BAIT, SECONDARY)})
    wait_until(lambda: greeting_at(d, SECONDARY).code == 421, 5, interval=0.2,
               what="127.0.0.11 to answer as a bait")
    r = greeting_at(d, SECONDARY, source="127.0.0.4")
    assert r.last.startswith("421 4.7.0 %s " % HOSTNAME), r    # the bait's text: test_tiers.py
    # the session that started at the secondary completes with its old settings
    finish_transaction(c)
    assert [m for _, _, m in backend.messages()] == [MESSAGE]
    assert d.session_for(c)["tier"] == "secondary"
    # the other tiers are untouched
    assert greeting_at(d, PRIMARY, source="127.0.0.5").code == 220
    assert greeting_at(d, BAIT, source="127.0.0.5").code == 421
    assert d.proc.poll() is None


@pytest.mark.parametrize("bad_line, key", [
    ("bogus_key = 1", "bogus_key"), ("greet_wait = 5x", "greet_wait"), ("listen_port = 0", "listen_port"),
], ids=["unknown-key", "bad-duration", "bad-port"])
def test_bad_reload_keeps_the_running_config(start_daemon, backend, connect, bad_line, key):
    d = start_daemon(backend)
    c = open_transaction(connect, d, PRIMARY)
    # the bad file would also turn the primary into a bait
    d.reload({"primary_ips": None, "bait_ips": "%s %s" % (BAIT, PRIMARY)}, extra_lines=[bad_line])
    bad_lineno = len(open(d.conf_path).read().splitlines())
    wait_until(lambda: "reload refused: %s:%d:" % (d.conf_path, bad_lineno) in d.stderr(), 5,
               what="reload refused log line")
    assert "reload refused: %s:%d: %s:" % (d.conf_path, bad_lineno, key) in d.stderr()
    assert d.proc.poll() is None
    assert greeting_at(d, PRIMARY).code == 220
    assert greeting_at(d, BAIT).code == 421
    finish_transaction(c)
    assert len(backend.messages()) == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_shutdown_lets_a_session_finish(start_daemon, backend, connect, sig):
    d = start_daemon(backend, shutdown_grace="10s")
    c = open_transaction(connect, d, PRIMARY)
    d.signal(sig)
    wait_until(lambda: not port_accepts(PRIMARY, d.port, source="127.0.0.3"), 3, what="listeners closed")
    finish_transaction(c)
    assert [m for _, _, m in backend.messages()] == [MESSAGE]
    assert d.proc.wait(5) == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_shutdown_grace_expires_with_421(start_daemon, backend, connect, sig):
    d = start_daemon(backend, shutdown_grace="1s")
    c = connect(d)
    c.greeting()
    c.ehlo()
    t0 = time.monotonic()
    d.signal(sig)
    r = c.read_reply(timeout=5)
    assert r.last.startswith("421 4.3.2"), r
    assert 0.7 <= time.monotonic() - t0 <= 3.0
    assert c.is_closed(3)
    assert d.proc.wait(5) == 0
