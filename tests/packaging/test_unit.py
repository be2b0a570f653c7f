"""The systemd units, checked offline (PID 1 here is not systemd; the VM
image test runs them for real): `systemd-analyze security` exposure of
mxtier.service at most 3.0, and `systemd-analyze verify` clean apart from
the programs that are only there once the package is installed."""
import os
import re
import shutil
import subprocess

import pytest

MAX_EXPOSURE = 3.0
UNITS = ("mxtier.service", "mxtier-nftables.service")

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze is not installed (package systemd)")


def unit_path(root, name):
    return os.path.join(root, "packaging", "systemd", name)


def test_security_exposure(root):
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                        unit_path(root, "mxtier.service")], capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for mxtier\.service: (\d+\.\d+)", r.stdout)
    assert m, r.stdout + r.stderr
    exposure = float(m.group(1))
    print("mxtier.service exposure %.1f" % exposure)
    assert exposure <= MAX_EXPOSURE, r.stdout


@pytest.mark.parametrize("name", UNITS)
def test_verify(root, name):
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", unit_path(root, name)],
                       capture_output=True, text=True, timeout=60)
    problems = []
    for line in (r.stdout + r.stderr).splitlines():
        m = re.search(r"Command (\S+) is not executable: No such file or directory", line)
        if m and not os.path.exists(m.group(1)):
            continue     # installed by the package, not on this machine
        problems.append(line)
    assert not problems, "\n".join(problems)


def test_capabilities_are_the_parents_only(root):
    """The bounding set names exactly what the privileged parent uses (see the unit's comment)."""
    with open(unit_path(root, "mxtier.service")) as f:
        text = f.read()
    caps = re.search(r"^CapabilityBoundingSet=(.*)$", text, re.M).group(1).split()
    # CAP_KILL: the parent forwards SIGTERM/SIGHUP/SIGUSR1 to the engine, which runs as
    # the mxtier user (without it a stop under systemd ends in SIGKILL: the image test)
    assert sorted(caps) == ["CAP_KILL", "CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_SETGID", "CAP_SETUID"]
