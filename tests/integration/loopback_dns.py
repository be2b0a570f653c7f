"""loopback_dns - dnsmasq as an authoritative test DNS server on loopback.

    dns = Dnsmasq(workdir, port).start(
        host_records=[("mx10.t.test", "127.0.0.10")],      # A + PTR (forward-confirmed)
        a_records=[("mx20.t.test", "127.0.0.11")],          # A only, no PTR
        ptr_records=[("127.0.0.12", "mx30.other.test")],    # PTR only
        mx_records=[("t.test", "mx10.t.test", 10)])
    ...
    dns.stop()

The options are the demo's (tests/demo/run-demo, FIELD-NOTES): no upstream,
no /etc/hosts, answers only for .test, 127.in-addr.arpa and ip6.arpa (NXDOMAIN for
names it does not hold). dnsmasq is the Debian package dnsmasq-base; it is
started and stopped by its own PID.
"""

import os
import shutil
import signal
import socket
import subprocess
import time

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


def ptr_name(addr):
    return ".".join(reversed(addr.split("."))) + ".in-addr.arpa"


class AddressInUse(Exception):
    pass


def free_dns_port(address="127.0.0.1"):
    """free_dns_port - a port free for UDP and TCP on address (dnsmasq listens on both)."""
    for _ in range(100):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            u.bind((address, 0))
            port = u.getsockname()[1]
            t.bind((address, port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise RuntimeError("no free port for a DNS server")


class Dnsmasq:
    """Dnsmasq - port None: a free one, chosen again if another process takes it first."""

    def __init__(self, workdir, port=None, address="127.0.0.1", name="dnsmasq"):
        self.fixed_port = port
        self.port = port
        self.address = address
        self.log_path = os.path.join(workdir, name + ".log")
        self.proc = None

    def start(self, **records):
        for _ in range(1 if self.fixed_port else 5):
            self.port = self.fixed_port or free_dns_port(self.address)
            try:
                return self._start(**records)
            except AddressInUse:
                continue
        raise AssertionError("dnsmasq: no port it could listen on: %s" % open(self.log_path).read())

    def _start(self, host_records=(), a_records=(), ptr_records=(), mx_records=()):
        args = [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                "--no-poll", "--pid-file=", "--listen-address=" + self.address, "--bind-interfaces",
                "--port=%d" % self.port, "--local=/test/", "--local=/127.in-addr.arpa/", "--local=/ip6.arpa/",
                "--log-facility=-", "--log-queries"]
        if os.geteuid() == 0:
            args += ["--user=nobody", "--group=nogroup"]
        args += ["--host-record=%s,%s" % r for r in host_records]
        args += ["--address=/%s/%s" % r for r in a_records]
        args += ["--ptr-record=%s,%s" % (ptr_name(a), n) for a, n in ptr_records]
        args += ["--mx-host=%s,%s,%d" % r for r in mx_records]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log_path, "wb"), start_new_session=True)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = open(self.log_path).read()
                if "Address already in use" in log and not self.fixed_port:
                    raise AddressInUse(log)
                raise AssertionError("dnsmasq exited: %s" % log)
            if self.answers():
                return self
            time.sleep(0.05)
        raise AssertionError("dnsmasq did not answer on %s:%d" % (self.address, self.port))

    def answers(self):
        """answers - does a query for a name it holds nothing for come back (NXDOMAIN)?"""
        query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05probe\x04test\x00\x00\x01\x00\x01"
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.2)
        try:
            s.sendto(query, (self.address, self.port))
            return s.recv(512)[:2] == b"\x12\x34"
        except OSError:
            return False
        finally:
            s.close()

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
