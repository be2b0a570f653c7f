"""The packaged /etc/mxtier/mxtier.conf and mxtier.conf(5) against the
config table (what `mxtierd -n` prints, one line per key of the table in
proxy/config/config.c): the same keys, in the same order, nothing else;
every default in the packaged file is the built-in one, except the
package's documented settings; and the packaged file, once the operator
adds a tier address, is a configuration mxtierd accepts."""
import os
import re
import subprocess

import pytest

# The package's own settings (mxtier.conf(5), DESCRIPTION): active lines in the file.
PACKAGED = {
    "control_socket": "/run/mxtier/control.sock",
    "kernel_sets": "yes",
    "dns_checks": "yes",
    "http_listen": "127.0.0.1:8025",
}
# Built-in defaults computed at load (the system host name): the file leaves them empty.
COMPUTED = {"hostname", "appliance_name"}

KEY_LINE = re.compile(r"^(#?)([a-z0-9_]+) =(?: (.*))?$")


def effective(mxtierd, tmp_path, text):
    conf = tmp_path / "probe.conf"
    conf.write_text(text)
    r = subprocess.run([mxtierd, "-n", "-c", str(conf)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return [tuple(l.split(" = ", 1)) if " = " in l else (l.rstrip(" ="), "") for l in r.stdout.splitlines()]


@pytest.fixture(scope="module")
def table(mxtierd, tmp_path_factory):
    """table - [(key, built-in default)] in the table's order."""
    tmp = tmp_path_factory.mktemp("keys")
    # A tier address is required; take each tier list's default from a run that does not set it.
    a = effective(mxtierd, tmp, "primary_ips = 127.0.0.10\n")
    b = effective(mxtierd, tmp, "bait_ips = 127.0.0.12\n")
    assert [k for k, _ in a] == [k for k, _ in b]
    return [(k, vb if k == "primary_ips" else va) for (k, va), (_, vb) in zip(a, b)]


def packaged_conf(root):
    with open(os.path.join(root, "packaging", "conf", "mxtier.conf")) as f:
        return f.read()


def conf_keys(text):
    """conf_keys - [(key, value, active)] of the "key = value" and "#key = value" lines."""
    out = []
    for line in text.splitlines():
        m = KEY_LINE.match(line)
        if m:
            out.append((m.group(2), m.group(3) or "", m.group(1) == ""))
    return out


def test_packaged_conf_lists_every_key_once_in_table_order(table, root):
    keys = [k for k, _, _ in conf_keys(packaged_conf(root))]
    assert keys == [k for k, _ in table]


def test_packaged_conf_defaults_are_the_built_in_ones(table, root):
    defaults = dict(table)
    for key, value, active in conf_keys(packaged_conf(root)):
        if key in PACKAGED:
            assert active and value == PACKAGED[key], key
        elif key in COMPUTED:
            assert not active and value == "", key
        else:
            assert not active, "%s is set in the packaged file but is no documented packaged setting" % key
            assert value == defaults[key], "%s: packaged %r, built-in %r" % (key, value, defaults[key])


def test_packaged_conf_with_a_tier_address_is_accepted(mxtierd, root, tmp_path):
    got = dict(effective(mxtierd, tmp_path, packaged_conf(root) + "primary_ips = 192.0.2.10\n"))
    for key, value in PACKAGED.items():
        assert got[key] == value
    assert got["primary_ips"] == "192.0.2.10"


def test_man_page_lists_every_key_and_nothing_else(table, root):
    with open(os.path.join(root, "docs", "man", "mxtier.conf.5")) as f:
        page = f.read()
    # Each key is a .TP entry whose tag line is `.BR key " (type, default: ...)"`.
    keys = re.findall(r"^\.TP\n\.BR ([a-z0-9_]+) \"", page, re.M)
    assert keys == [k for k, _ in table]
    for key, value in PACKAGED.items():
        assert "%s = %s" % (key, value) in page


def test_the_daemon_says_the_package_version():
    """proxy/base/version.h is what the dashboard, /metrics and the heartbeat say: the package's version."""
    top = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    with open(os.path.join(top, "packaging", "debian", "changelog")) as f:
        package = f.readline().split("(", 1)[1].split(")", 1)[0]
    with open(os.path.join(top, "proxy", "base", "version.h")) as f:
        daemon = re.search(r'#define MXTIER_VERSION\s+"([^"]+)"', f.read()).group(1)
    assert daemon == package, "version.h says %s, the changelog %s" % (daemon, package)
