"""tier_dns - an authoritative test DNS server on loopback for the tier tests.

Runs in a thread of the test process (python3-dnslib, no recursion): one UDP
socket on 127.0.0.1 and a free port, answering only what the test put in:

    dns = TierDns().start()
    dns.ptr("127.1.3.5", "mail.sender3.test", ttl=60)      # PTR
    dns.a("mail.sender3.test", "127.1.3.5", ttl=60)          # A (forward)
    dns.host("127.1.3.5", "mail.sender3.test")               # both at once
    dns.listed("bl.test", "127.1.3.5", "127.0.0.2", ttl=5)   # 5.3.1.127.bl.test A
    dns.silence("4.3.1.127.in-addr.arpa")                    # never answered
    dns.drop_first("mail.sender3.test", 1)                   # first query lost
    dns.delay("6.3.1.127.in-addr.arpa", 0.3)                 # answered late
    ...
    dns.stop()

Every record carries its own TTL.  Unknown names get NXDOMAIN (SOA in the
authority section, TTL `negative_ttl`), known names without the asked type
an empty NOERROR.  A silenced name gets no reply at all, so the resolver
runs into its timeout; drop_first(name, n) loses only the first n queries
(a lost datagram); delay(name, seconds) answers late (from a timer thread,
the server keeps answering others meanwhile).  Every query is recorded in `queries` as
(time, name, type, outcome) with outcome "answer", "nxdomain", "nodata",
"silent" or "dropped".
"""

import select
import socket
import threading
import time

from dnslib import PTR, QTYPE, RCODE, RR, SOA, A, DNSRecord, DNSLabel


def reverse_name(ip):
    """reverse_name - 1.2.3.4 -> 4.3.2.1.in-addr.arpa"""
    return ".".join(reversed(ip.split("."))) + ".in-addr.arpa"


def dnsbl_name(ip, zone):
    """dnsbl_name - 1.2.3.4, bl.test -> 4.3.2.1.bl.test"""
    return ".".join(reversed(ip.split("."))) + "." + zone


def _norm(name):
    return str(name).lower().rstrip(".")


class TierDns:
    def __init__(self, negative_ttl=1):
        self.lock = threading.Lock()
        self.records = {}           # (name, "A"|"PTR") -> [(value, ttl)]
        self.silent = set()
        self.drops = {}             # name -> queries still to lose
        self.delays = {}            # name -> seconds
        self.negative_ttl = negative_ttl
        self.queries = []
        self.sock = None
        self.port = None
        self.thread = None
        self.running = False

    # -- zone ---------------------------------------------------------------

    def add(self, name, rtype, value, ttl=60):
        with self.lock:
            self.records.setdefault((_norm(name), rtype), []).append((value, int(ttl)))
        return self

    def replace(self, name, rtype, value, ttl=60):
        with self.lock:
            self.records[(_norm(name), rtype)] = [(value, int(ttl))]
        return self

    def remove(self, name, rtype=None):
        with self.lock:
            for key in list(self.records):
                if key[0] == _norm(name) and (rtype is None or key[1] == rtype):
                    del self.records[key]
        return self

    def ptr(self, ip, name, ttl=60):
        return self.add(reverse_name(ip), "PTR", name, ttl)

    def a(self, name, ip, ttl=60):
        return self.add(name, "A", ip, ttl)

    def host(self, ip, name, ttl=60):
        """host - PTR and the matching A: a forward-confirmed name."""
        return self.ptr(ip, name, ttl).a(name, ip, ttl)

    def listed(self, zone, ip, value="127.0.0.2", ttl=60):
        return self.add(dnsbl_name(ip, zone), "A", value, ttl)

    def silence(self, name):
        with self.lock:
            self.silent.add(_norm(name))
        return self

    def drop_first(self, name, count=1):
        with self.lock:
            self.drops[_norm(name)] = count
        return self

    def delay(self, name, seconds):
        with self.lock:
            self.delays[_norm(name)] = seconds
        return self

    def queried(self, name, rtype=None):
        """queried - how many queries for this name (and type) arrived."""
        with self.lock:
            return sum(1 for q in self.queries if q[1] == _norm(name) and (rtype is None or q[2] == rtype))

    # -- server -------------------------------------------------------------

    def _exists(self, name):
        return any(n == name or n.endswith("." + name) for n, _ in self.records)

    def _answer(self, data):
        try:
            request = DNSRecord.parse(data)
        except Exception:           # noqa: BLE001 - garbage is ignored
            return None
        qname = request.q.qname
        name = _norm(qname)
        qtype = QTYPE.get(request.q.qtype, str(request.q.qtype))
        with self.lock:
            if name in self.silent:
                self.queries.append((time.monotonic(), name, qtype, "silent"))
                return None
            if self.drops.get(name, 0) > 0:
                self.drops[name] -= 1
                self.queries.append((time.monotonic(), name, qtype, "dropped"))
                return None
            reply = request.reply()
            reply.header.aa = 1
            reply.header.ra = 0
            entries = self.records.get((name, qtype), [])
            for value, ttl in entries:
                rdata = PTR(value) if qtype == "PTR" else A(value)
                reply.add_answer(RR(qname, getattr(QTYPE, qtype), rdata=rdata, ttl=ttl))
            if entries:
                outcome = "answer"
            else:
                outcome = "nodata"
                if not self._exists(name):
                    reply.header.rcode = RCODE.NXDOMAIN
                    outcome = "nxdomain"
                zone = DNSLabel(".".join(name.split(".")[-2:]) or ".")
                reply.add_auth(RR(zone, QTYPE.SOA, ttl=self.negative_ttl,
                                  rdata=SOA("ns.test", "hostmaster.test",
                                            (1, 60, 60, 60, self.negative_ttl))))
            self.queries.append((time.monotonic(), name, qtype, outcome))
            late = self.delays.get(name, 0)
        return reply.pack(), late

    def _serve(self):
        while self.running:
            r, _, _ = select.select([self.sock], [], [], 0.1)
            if not r:
                continue
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                continue
            out = self._answer(data)
            if out is None:
                continue
            packet, late = out
            if late:
                t = threading.Timer(late, self._send, (packet, peer))
                t.daemon = True
                t.start()
            else:
                self._send(packet, peer)

    def _send(self, packet, peer):
        try:
            self.sock.sendto(packet, peer)
        except OSError:
            pass

    def start(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self._serve, name="tier-dns", daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.running = False
        try:                        # wake the select at once
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(b"", ("127.0.0.1", self.port))
        except OSError:
            pass
        if self.thread:
            self.thread.join(2)
        if self.sock:
            self.sock.close()

    @property
    def server(self):
        return "127.0.0.1:%d" % self.port
