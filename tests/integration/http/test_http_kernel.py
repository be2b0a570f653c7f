"""A block through the API reaches the kernel set, in the network namespaces
of tests/integration/kernel/netns_topology.py: mxtierd (split, kernel sets
on) serves its API on the appliance namespace's loopback; a POST adds a
client to block4 with the TTL asked for, its SYNs are dropped, /metrics
counts the set's element and the set writer's adds; a remove takes it out."""

import os
import shutil
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "kernel"))

import netns_topology as nt  # noqa: E402
from httpapi import Api, metric_samples, sample, wait_http  # noqa: E402

HTTP_PORT = 8025


@pytest.fixture(scope="module")
def topo():
    why = nt.missing_prerequisites()
    if why:
        pytest.skip("kernel HTTP test skipped: " + why)
    nt.cleanup_stale()
    t = nt.Topology().create()
    try:
        yield t
    finally:
        t.destroy()


@pytest.fixture
def kworkdir():
    path = tempfile.mkdtemp(prefix="mxtier-http-kernel-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def in_app(topo, fn):
    with nt.in_netns(topo.app):
        return fn()


def test_block_through_the_api_reaches_the_kernel_set(topo, kworkdir):
    started = []
    try:
        backend = nt.NsBackend(topo, kworkdir, ())
        started.append(backend)
        backend.start()
        daemon = nt.NsDaemon(topo, kworkdir, {"http_listen": "127.0.0.1:%d" % HTTP_PORT})
        daemon.write_config()
        topo.load_ruleset(daemon.conf_path)
        topo.load_routing(daemon.conf_path)
        started.append(daemon)
        daemon.start()
        x = nt.CLIENTS4[6]
        assert topo.connect_outcome(x, nt.PRIMARY4)[0] == "banner"
        api = Api(HTTP_PORT)
        in_app(topo, lambda: wait_http(HTTP_PORT))
        status, _, body = in_app(topo, lambda: api.post("/api/listings", {"action": "add", "list": "block",
                                                                          "address": x, "ttl": "30m"}))
        assert status == 200, body
        timeout, _ = nt.wait_for(lambda: (topo.set_elements("block4") or {}).get(x), 2,
                                 what="%s in block4:\n%s" % (x, topo.set_text("block4")))
        assert timeout == 1800
        assert topo.connect_outcome(x, nt.PRIMARY4, timeout=1.0) == ("timeout", None)

        def counted():
            s = metric_samples(in_app(topo, lambda: api.get("/metrics"))[2])
            return sample(s, "mxtier_kernel_set_elements", set="block4") == 1 and s
        s = nt.wait_for(counted, 3, what="block4 counted on /metrics")
        assert sample(s, "mxtier_kernel_sets") == 1
        assert sample(s, "mxtier_kernel_set_adds_total") >= 1
        assert sample(s, "mxtier_kernel_set_full_total") == 0

        status, _, body = in_app(topo, lambda: api.post("/api/listings", {"action": "remove", "list": "block",
                                                                          "address": x}))
        assert status == 200, body
        nt.wait_for(lambda: x not in (topo.set_elements("block4") or {}), 2,
                    what="%s out of block4:\n%s" % (x, topo.set_text("block4")))
        assert "http: local block add %s ttl=30m" % x in daemon.stderr()
    finally:
        nt.stop_all(started)
