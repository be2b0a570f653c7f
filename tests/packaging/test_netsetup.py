"""packaging/systemd/mxtier-netsetup, what mxtier.service runs as root
before mxtierd starts and at each reload, in the kernel-rules test
namespaces with a real mxtierd (transparent, kernel sets):

* a restart of the service (`start`) loads the table again and keeps the
  block set's elements with their remaining time, with no help from the
  daemon;
* after `nft flush ruleset` (how Debian's nftables.service starts), what
  mxtier-nftables.service triggers (`reload`, then SIGHUP) puts the table,
  its drop rule and the block back within a second;
* the TPROXY policy routing is applied once, however often it runs;
* a configuration mxtierctl refuses loads nothing."""
import os
import signal
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration", "kernel"))

import netns_topology as nt  # noqa: E402
from netns_topology import CLIENTS4, PRIMARY4  # noqa: E402
from test_kernel_rules import appliance, assert_dropped, kworkdir, topo, wait_element  # noqa: E402,F401

NETSETUP = os.path.join(ROOT, "packaging", "systemd", "mxtier-netsetup")


def netsetup(topo, conf, command, check=True):
    return topo.exec(topo.app, "env", "MXTIER_CONF=%s" % conf, "MXTIERCTL=%s" % nt.MXTIERCTL,
                     "sh", NETSETUP, command, check=check)


def fwmark_rules(topo, family):
    return [l for l in topo.ip(topo.app, family, "rule", "show").stdout.splitlines() if "fwmark 0x1 lookup 100" in l]


def test_restart_keeps_blocks_and_nftables_flush_is_repaired_within_a_second(topo, appliance):
    daemon, _ = appliance(block_ttl="1h")
    daemon.ctl("block", "add", CLIENTS4[6], "1h")
    wait_element(topo, "block4", CLIENTS4[6])

    netsetup(topo, daemon.conf_path, "start")
    elems = topo.set_elements("block4")
    assert CLIENTS4[6] in elems, "start replaced the table and lost the block"
    assert 3000 < elems[CLIENTS4[6]][1] <= 3600, "kept with its remaining time: %r" % (elems,)

    topo.nft("flush", "ruleset")
    assert topo.set_elements("block4") is None
    started = time.monotonic()
    netsetup(topo, daemon.conf_path, "reload")
    daemon.signal(signal.SIGHUP)
    wait_element(topo, "block4", CLIENTS4[6], timeout=1.0)
    elapsed = time.monotonic() - started
    print("table and block back %.3f s after the flush (load %s)" % (elapsed, os.getloadavg()))
    assert elapsed < 1.0
    chain = topo.nft("list", "chain", "inet", nt.TABLE, "prerouting").stdout
    assert "ip saddr @block4 drop" in chain, chain
    assert_dropped(topo, daemon, CLIENTS4[6], host=PRIMARY4)


def test_routing_is_applied_once(topo, appliance):
    daemon, _ = appliance()
    for _ in range(2):
        netsetup(topo, daemon.conf_path, "start")
    assert len(fwmark_rules(topo, "-4")) == 1
    assert len(fwmark_rules(topo, "-6")) == 1
    assert "local default dev lo" in topo.ip(topo.app, "-4", "route", "show", "table", "100").stdout


def test_refused_configuration_loads_nothing(topo, appliance, kworkdir):
    daemon, _ = appliance(block_ttl="1h")
    daemon.ctl("block", "add", CLIENTS4[5], "1h")
    wait_element(topo, "block4", CLIENTS4[5])
    chain = topo.nft("list", "chain", "inet", nt.TABLE, "prerouting").stdout
    handle = topo.nft("-a", "list", "table", "inet", nt.TABLE).stdout.splitlines()[0]
    bad = os.path.join(kworkdir, "bad.conf")
    with open(daemon.conf_path) as f, open(bad, "w") as out:
        out.write(f.read() + "no_such_key = 1\n")
    r = netsetup(topo, bad, "reload", check=False)
    assert r.returncode != 0
    assert "no_such_key" in r.stderr
    # The same table (not a new one: its handle), the same rules, the block still there.
    assert topo.nft("-a", "list", "table", "inet", nt.TABLE).stdout.splitlines()[0] == handle
    assert topo.nft("list", "chain", "inet", nt.TABLE, "prerouting").stdout == chain
    assert CLIENTS4[5] in topo.set_elements("block4")


def test_service_restart_keeps_the_kernel_blocks(topo, appliance, kworkdir):
    """What an upgrade does (dh_installsystemd --restart-after-upgrade): stop, ExecStartPre, a new mxtierd.
    Without a database the new daemon knows nothing of the block; the kernel still drops the client."""
    daemon, _ = appliance(block_ttl="1h")
    daemon.ctl("block", "add", CLIENTS4[7], "1h")
    wait_element(topo, "block4", CLIENTS4[7])
    assert daemon.stop() == 0
    netsetup(topo, daemon.conf_path, "start")
    successor = nt.NsDaemon(topo, kworkdir, {"block_ttl": "1h"}, name="mxtierd-after-upgrade")
    try:
        successor.start()
        time.sleep(0.5)     # the set writer's first batches, had it wanted to change anything
        assert CLIENTS4[7] in topo.set_elements("block4")
        assert_dropped(topo, successor, CLIENTS4[7], host=PRIMARY4)
    finally:
        nt.stop_all([successor])
