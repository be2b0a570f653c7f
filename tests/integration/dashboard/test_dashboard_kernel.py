"""A block added in the Listings page reaches the kernel set: mxtierd runs in
the appliance namespace of tests/integration/kernel/netns_topology.py with
kernel sets and its dashboard on that namespace's loopback; a real Chromium,
started inside the same namespace (drive_listings.py), adds the block; the
element appears in `block4` with its TTL and the client's SYNs are dropped."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "kernel"))

import netns_topology as nt  # noqa: E402
from dashlib import WEB, http_missing  # noqa: E402
from browser import missing as browser_missing  # noqa: E402

HTTP_PORT = 8025


@pytest.fixture(scope="module")
def topo():
    why = http_missing() or browser_missing()
    if why:
        pytest.skip("dashboard kernel test skipped: " + why)
    with nt.topology(lambda why: pytest.skip("dashboard kernel test skipped: " + why)) as t:
        yield t


@pytest.fixture
def kworkdir():
    path = tempfile.mkdtemp(prefix="mxtier-dash-kernel-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_block_added_in_the_listings_page_reaches_the_kernel_set(topo, kworkdir):
    started = []
    try:
        backend = nt.NsBackend(topo, kworkdir, ())
        started.append(backend)
        backend.start()
        daemon = nt.NsDaemon(topo, kworkdir, {"http_listen": "127.0.0.1:%d" % HTTP_PORT, "dashboard_dir": WEB})
        daemon.write_config()
        topo.load_ruleset(daemon.conf_path)
        topo.load_routing(daemon.conf_path)
        started.append(daemon)
        daemon.start()
        x = nt.CLIENTS4[5]
        outcome = topo.connect_outcome(x, nt.PRIMARY4)
        assert outcome[0] == "banner", outcome

        r = subprocess.run(["ip", "netns", "exec", topo.app, "/usr/bin/python3", os.path.join(HERE, "drive_listings.py"),
                            "http://127.0.0.1:%d/" % HTTP_PORT, x, "1h"],
                           capture_output=True, text=True, timeout=90,
                           env=dict(os.environ, MXTIER_BUILD=os.environ.get("MXTIER_BUILD", "")))
        assert r.returncode == 0, "drive_listings failed:\n%s\n%s\n%s" % (r.stdout, r.stderr, daemon.stderr()[-3000:])
        result = json.loads(r.stdout.strip().splitlines()[-1])
        assert result["problems"] == [], result
        assert "ok" in result["status"], result

        timeout, _ = nt.wait_for(lambda: (topo.set_elements("block4") or {}).get(x), 2,
                                 what="%s in block4:\n%s" % (x, topo.set_text("block4")))
        assert timeout == 3600
        outcome = topo.connect_outcome(x, nt.PRIMARY4, timeout=1.0)
        assert outcome == ("timeout", None), outcome
        assert "http: local block add %s" % x in daemon.stderr()
    finally:
        nt.stop_all(started)
