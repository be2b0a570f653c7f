"""The literal reply texts of docs/engine.md, one row per reply.

The behaviour tests elsewhere check codes and enhanced status codes; this
table checks that each reply begins with exactly the text the contract
gives (code, enhanced code and words; more words after it are allowed), so
a wording change shows up as one clearly labelled failure here."""

import pytest

from harness import HOSTNAME

H = HOSTNAME


def _session(connect, d):
    c = connect(d)
    c.greeting()
    c.ehlo()
    return c


def unknown_command(connect, d, b):
    return _session(connect, d).cmd("FOO")


def not_implemented(connect, d, b):
    return _session(connect, d).cmd("XCLIENT ADDR=192.0.2.1")


def line_too_long(connect, d, b):
    return _session(connect, d).cmd("NOOP " + "x" * 600)


def out_of_order(connect, d, b):
    return _session(connect, d).cmd("RCPT TO:<b@example.org>")


def too_many_recipients(connect, d, b):
    c = _session(connect, d)
    c.cmd("MAIL FROM:<a@example.org>")
    for i in range(100):
        c.cmd("RCPT TO:<r%d@example.org>" % i)
    return c.cmd("RCPT TO:<one-too-many@example.org>")


def _pregreet(connect, d):
    c = connect(d)
    c.send(b"EHLO early.example.org\r\n")
    c.greeting()
    c.read_reply()
    c.cmd("MAIL FROM:<a@example.org>")
    return c


def pregreet_rcpt(connect, d, b):
    return _pregreet(connect, d).cmd("RCPT TO:<b@example.org>")


def pregreet_data(connect, d, b):
    c = _pregreet(connect, d)
    c.cmd("RCPT TO:<b@example.org>")
    return c.cmd("DATA")


def too_many_errors(connect, d, b):
    c = _session(connect, d)
    for _ in range(3):
        r = c.cmd("FOO")
    return r if r.code == 421 else c.read_reply()


def non_smtp(connect, d, b):
    c = connect(d)
    c.greeting()
    return c.cmd("GET / HTTP/1.0")


def _in_data(connect, d):
    c = _session(connect, d)
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<b@example.org>")
    assert c.cmd("DATA").code == 354
    return c


def bare_lf(connect, d, b):
    c = _in_data(connect, d)
    c.send(b"Subject: x\r\n\r\nbare\n.\n")
    return c.read_reply()


def long_text_line(connect, d, b):
    c = _in_data(connect, d)
    c.send(b"x" * 1200 + b"\r\n.\r\n")
    return c.read_reply()


def message_too_big(connect, d, b):
    c = _in_data(connect, d)
    c.send((b"y" * 98 + b"\r\n") * 200 + b".\r\n")
    return c.read_reply()


def size_param_too_big(connect, d, b):
    return _session(connect, d).cmd("MAIL FROM:<a@example.org> SIZE=999999")


def mail_syntax(connect, d, b):
    return _session(connect, d).cmd("MAIL FROM:a@example.org")


def command_timeout(connect, d, b):
    c = _session(connect, d)
    return c.read_reply(timeout=5)


# label, config, recording backend options, scenario, the contract's text
# (the last reply line must begin with it; "*" marks where the contract
# gives no words, only codes)
TEXTS = [
    ("unrecognized", {}, [], unknown_command, "500 5.5.2 Command unrecognized"),
    ("not-implemented", {}, [], not_implemented, "502 5.5.1 Command not implemented"),
    ("line-too-long", {}, [], line_too_long, "500 5.5.2 Line too long"),
    ("out-of-order", {}, [], out_of_order, "503 5.5.1 *"),
    ("too-many-recipients", {}, [], too_many_recipients, "452 4.5.3 Too many recipients"),
    ("pregreet-rcpt", {"greet_wait": "1s"}, [], pregreet_rcpt, "550 5.5.1 Protocol error"),
    ("pregreet-data", {"greet_wait": "1s"}, [], pregreet_data, "554 5.5.1 No valid recipients"),
    ("too-many-errors", {"max_errors": "3"}, [], too_many_errors, "421 4.7.0 %s Too many errors" % H),
    ("non-smtp", {}, [], non_smtp, "521 5.7.0 non-SMTP command"),
    ("bare-lf", {}, [], bare_lf, "521 5.5.2 %s Bare CR, LF or NUL in message data" % H),
    ("text-line-too-long", {}, [], long_text_line, "552 5.5.6 Message line too long"),
    ("message-too-big", {"message_size_limit": "10k"}, [], message_too_big, "552 5.3.4 Message too big"),
    ("size-param-too-big", {"message_size_limit": "10k"}, [], size_param_too_big, "552 5.3.4 *"),
    ("mail-syntax", {}, [], mail_syntax, "501 5.1.7 *"),
    ("timeout", {"command_timeout": "1s"}, [], command_timeout, "421 4.4.2 %s Timeout, closing connection" % H),
    ("backend-lost-before-data", {}, ["--disconnect", "MAIL"],
     lambda connect, d, b: _session(connect, d).cmd("MAIL FROM:<a@example.org>"),
     "451 4.4.1 Backend not available, try again later"),
    ("backend-lost-in-data", {}, ["--disconnect", "DOT"],
     lambda connect, d, b: (lambda c: (c.send(b"x\r\n.\r\n"), c.read_reply())[1])(_in_data(connect, d)),
     "451 4.4.2 Backend connection lost, message not accepted"),
]


@pytest.mark.parametrize("config, backend_args, scenario, expected",
                         [t[1:] for t in TEXTS], ids=[t[0] for t in TEXTS])
def test_reply_text(start_backend, start_daemon, connect, config, backend_args, scenario, expected):
    b = start_backend(*backend_args)
    d = start_daemon(b, **config)
    r = scenario(connect, d, b)
    assert r.last.startswith(expected.rstrip("*")), r
