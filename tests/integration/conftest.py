"""Fixtures for the mxtierd integration tests.

Every process a test starts (mxtierd, the recording backend, smtp-sink) is
registered here and stopped by its PID at teardown; every temp dir is removed.
"""

import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (Daemon, RecordingBackend, SanitizerReport, SmtpClient, SmtpSink,  # noqa: E402
                     PRIMARY)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


@pytest.fixture
def workdir():
    path = tempfile.mkdtemp(prefix="mxtier-it-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def procs(request, workdir):
    """procs - every started child; stopped by PID in reverse order at teardown."""
    started = []
    yield started
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    reports = []
    for p in reversed(started):
        try:
            p.stop()
        except SanitizerReport as e:    # fail the test once every child is stopped
            reports.append(e)
        except Exception as e:          # keep stopping the others
            print("stopping %r: %s" % (p, e))
        if failed and isinstance(p, Daemon):
            print("---- mxtierd stderr (%s) ----\n%s" % (p.conf_path, p.stderr()[-6000:]))
        if failed and isinstance(p, RecordingBackend):
            print("---- backend stderr ----\n%s" % open(p.stderr_path, errors="replace").read()[-3000:])
    if reports:
        pytest.fail(str(reports[0]), pytrace=False)


@pytest.fixture
def start_backend(procs, workdir):
    """start_backend(*args) - a recording backend with recording_backend.py options."""
    count = [0]

    def start(*args):
        count[0] += 1
        b = RecordingBackend(workdir, args, name="backend%d" % count[0])
        procs.append(b)
        return b.start()
    return start


@pytest.fixture
def backend(start_backend):
    return start_backend()


@pytest.fixture
def start_sink(procs, workdir):
    """start_sink(*args) - Postfix smtp-sink with extra options (-r/-f/-q/-w ...)."""
    count = [0]

    def start(*args):
        count[0] += 1
        s = SmtpSink(workdir, args, name="sink%d" % count[0])
        procs.append(s)
        return s.start()
    return start


@pytest.fixture
def start_daemon(procs, workdir):
    """start_daemon(backend, **config) - mxtierd in front of a backend (or a port)."""
    count = [0]

    def start(backend, **config):
        count[0] += 1
        port = backend if isinstance(backend, int) else backend.port
        d = Daemon(workdir, port, config, name="mxtierd%d" % count[0])
        procs.append(d)
        return d.start()
    return start


@pytest.fixture
def mxtierd(start_daemon, backend):
    return start_daemon(backend)


@pytest.fixture
def connect():
    """connect(daemon, host=PRIMARY, source=...) - an SmtpClient closed at teardown."""
    clients = []

    def make(daemon, host=PRIMARY, source="127.0.0.2", timeout=6.0):
        port = daemon if isinstance(daemon, int) else daemon.port
        c = SmtpClient(port, host=host, source=source, timeout=timeout)
        clients.append(c)
        return c
    yield make
    for c in clients:
        c.close()
