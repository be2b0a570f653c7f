"""mxtier-netsetup when nft cannot load the table (no nf_tables in the
kernel, say): with own tier addresses mail still flows, so the service
starts with a warning; in transparent mode nothing would catch the tier
addresses, so it does not start. `false` stands in for a failing nft."""
import os
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
NETSETUP = os.path.join(os.path.dirname(os.path.dirname(HERE)), "packaging", "systemd", "mxtier-netsetup")


def run(mxtierctl, tmp_path, transparent):
    conf = tmp_path / "mxtier.conf"
    conf.write_text("primary_ips = 192.0.2.10\nkernel_sets = yes\ntransparent = %s\n" % transparent)
    env = dict(os.environ, MXTIER_CONF=str(conf), MXTIERCTL=mxtierctl, NFT=shutil.which("false"))
    env.pop("JOURNAL_STREAM", None)
    return subprocess.run(["sh", NETSETUP, "start"], env=env, capture_output=True, text=True, timeout=30)


def test_own_addresses_start_with_a_warning(mxtierctl, tmp_path):
    r = run(mxtierctl, tmp_path, "no")
    assert r.returncode == 0, r.stderr
    assert "could not load table inet mxtier: the kernel does not drop blocked senders" in r.stderr


def test_transparent_mode_does_not_start(mxtierctl, tmp_path):
    r = run(mxtierctl, tmp_path, "yes")
    assert r.returncode == 1
    assert "transparent mode needs it" in r.stderr
