#!/usr/bin/python3
"""dns_server - the test DNS server for the MTA tests (python3-dnslib).

    dns_server.py --zone FILE.json [--address 127.0.0.1] [--port 53] [--log FILE]

Answers every name from one JSON file and nothing else (no recursion, no
forwarding): NXDOMAIN for names it does not know, an empty NOERROR answer for
known names without the asked type.  The file is read again whenever it is
replaced, so a test changes the zone by rewriting it (see mta_harness.Dns).

Zone file: {"name": {"TYPE": [value, ...]}}, names without the final dot,
e.g.

    {"tiers.test": {"MX": [[10, "mx10.tiers.test"], [20, "mx20.tiers.test"]]},
     "mx10.tiers.test": {"A": ["127.0.0.10"]},
     "20.0.0.127.in-addr.arpa": {"PTR": ["good.sender.test"]},
     "21.0.0.127.bl.test": {"A": ["127.0.0.2"], "TXT": ["listed"]}}

Types: A, AAAA, MX ([pref, host]), PTR, CNAME, TXT, NS.  Every query is
logged as one line `query NAME TYPE -> RCODE ANSWERS` (stderr or --log), so a
test can see what a resolver asked.  Prints `READY` when both the UDP and the
TCP listener are up.  Run with /usr/bin/python3 (Debian's python3-dnslib).
"""

import argparse
import json
import os
import sys
import threading
import time

from dnslib import AAAA, CNAME, MX, NS, PTR, QTYPE, RCODE, RR, SOA, TXT, A, DNSLabel
from dnslib.server import BaseResolver, DNSLogger, DNSServer

TTL = 1


def rdata(rtype, value):
    if rtype == "A":
        return A(value)
    if rtype == "AAAA":
        return AAAA(value)
    if rtype == "MX":
        pref, host = value
        return MX(host, int(pref))
    if rtype == "PTR":
        return PTR(value)
    if rtype == "CNAME":
        return CNAME(value)
    if rtype == "NS":
        return NS(value)
    if rtype == "TXT":
        return TXT(value)
    raise ValueError("unsupported record type %s" % rtype)


class ZoneResolver(BaseResolver):
    def __init__(self, path, log):
        self.path = path
        self.log = log
        self.lock = threading.Lock()
        self.stamp = None
        self.zone = {}

    def load(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self.stamp:
            return
        with open(self.path) as f:
            raw = json.load(f)
        zone = {}
        for name, types in raw.items():
            zone[name.lower().rstrip(".")] = {t.upper(): list(v) for t, v in types.items()}
        self.zone, self.stamp = zone, stamp

    def exists(self, name):
        """exists - the name or a name below it is in the zone (empty non-terminals exist)."""
        return any(n == name or n.endswith("." + name) for n in self.zone)

    def resolve(self, request, handler):
        reply = request.reply()
        reply.header.ra = 0
        reply.header.aa = 1
        qname = request.q.qname
        qtype = QTYPE.get(request.q.qtype, str(request.q.qtype))
        name = str(qname).lower().rstrip(".")
        with self.lock:
            self.load()
            entry = self.zone.get(name)
            answers = []
            if entry is not None:
                wanted = [qtype] if qtype != "ANY" else list(entry)
                for t in wanted:
                    for value in entry.get(t, []):
                        reply.add_answer(RR(qname, getattr(QTYPE, t), rdata=rdata(t, value), ttl=TTL))
                        answers.append("%s:%s" % (t, value))
                # a CNAME answers every type
                if not answers and qtype != "CNAME" and entry.get("CNAME"):
                    for value in entry["CNAME"]:
                        reply.add_answer(RR(qname, QTYPE.CNAME, rdata=CNAME(value), ttl=TTL))
                        answers.append("CNAME:%s" % value)
            if entry is None and not self.exists(name):
                reply.header.rcode = RCODE.NXDOMAIN
            if not answers:
                soa_zone = DNSLabel(".".join(name.split(".")[-1:]) or ".")
                reply.add_auth(RR(soa_zone, QTYPE.SOA, ttl=TTL,
                                  rdata=SOA("ns.test", "hostmaster.test", (1, 60, 60, 60, TTL))))
        self.log("query %s %s -> %s %s" % (name, qtype, RCODE.get(reply.header.rcode),
                                          ",".join(answers) or "-"))
        return reply


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--zone", required=True)
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--port", type=int, default=53)
    p.add_argument("--log")
    opts = p.parse_args(argv)

    out = open(opts.log, "a", buffering=1) if opts.log else sys.stderr
    lock = threading.Lock()

    def log(line):
        with lock:
            out.write("%.3f %s\n" % (time.time(), line))
            out.flush()

    resolver = ZoneResolver(opts.zone, log)
    quiet = DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    servers = [DNSServer(resolver, address=opts.address, port=opts.port, tcp=tcp, logger=quiet)
               for tcp in (False, True)]
    for s in servers:
        s.start_thread()
    print("READY", flush=True)
    try:
        while all(s.isAlive() for s in servers):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
