#!/usr/bin/python3
"""recording_backend - a small SMTP server that writes down exactly what it got.

It plays the backend MTA behind mxtierd in the integration tests (and in the
demo).  Standard library only; run it with /usr/bin/python3.

    recording_backend.py --dir DIR [--host 127.0.0.1] [--port 0] [options]

When it listens it prints `READY <port>` on stdout (port 0 = pick one).

What it records, per connection N (numbered from 1) in DIR:

    conn-000N.in          every byte received on the connection, raw
    conn-000N.json        the connection log (rewritten after each step):
                          peer, PROXY header (v1 line or parsed v2 binary),
                          XCLIENT lines and their decoded attributes, every
                          command line, every reply sent, the messages and
                          how the connection ended
    conn-000N-msg-K.eml   message K: the bytes received after the DATA
                          command up to and including the CRLF that starts
                          the terminating CRLF.CRLF (so the client's DATA
                          bytes are this file followed by ".\\r\\n")
    conn-000N-msg-K.partial  the same for a message whose end-of-data
                          never arrived (client or backend went away)

Fault injection.  STAGE is one of CONNECT (the greeting), EHLO, HELO,
XCLIENT, MAIL, RCPT, DATA, DOT (the end-of-data reply), RSET, NOOP, QUIT,
VRFY, and for --disconnect also MIDDATA (after --middata-bytes of message).

    --reply STAGE:TEXT        answer TEXT (e.g. "451 4.3.0 try later")
    --disconnect STAGE        close the connection instead of answering
    --delay STAGE:SECONDS     wait before answering
    --bad-reply STAGE:KIND    answer with a broken reply; KIND is one of
                              malformed, badcode, oversized, multiline,
                              mixed, partial (see BAD_REPLIES)
    --fault-after N           apply the faults only from the N-th
                              connection that sends MAIL on (default: all)

STARTTLS: --starttls CERT,KEY offers STARTTLS (the STARTTLS stage takes the
faults above too, e.g. --reply STARTTLS:"454 4.7.0 TLS not available").
After the handshake the log gets "tls": {"version", "cipher"}, EHLO is
needed again, and the EHLO reply no longer offers it. Bytes pipelined after
the STARTTLS line are discarded and noted in "starttls_pipelined".

Other options: --proxy-protocol (expect a PROXY v1 line or v2 header before
the greeting), --no-xclient, --no-8bitmime, --size N, --hostname NAME,
--lenient-eod (also end DATA at bare-LF/CR variants like "\\n.\\n", the way a
vulnerable MTA would, so that smuggling attempts become visible as extra
messages), --verbose (one line per command on stderr).
"""

import argparse
import asyncio
import json
import os
import re
import socket
import ssl
import struct
import sys
import time

STAGES = ("CONNECT", "EHLO", "HELO", "XCLIENT", "MAIL", "RCPT", "DATA", "DOT",
          "RSET", "NOOP", "QUIT", "VRFY", "MIDDATA", "STARTTLS")

BAD_REPLIES = {
    # not an SMTP reply at all
    "malformed": b"hello, this is not an SMTP reply\r\n",
    # three characters that are not a reply code
    "badcode": b"2x0 2.0.0 Ok\r\n",
    # one reply line far beyond the 512 octets RFC 5321 allows
    "oversized": b"250 2.0.0 " + b"x" * 100000 + b"\r\n",
    # a well-formed multi-line reply (must be passed on as it is)
    "multiline": b"250-2.0.0 first line\r\n250-2.0.0 second line\r\n250 2.0.0 Ok: last line\r\n",
    # a multi-line reply whose lines disagree about the code
    "mixed": b"250-2.0.0 looks fine\r\n550 5.0.0 but is not\r\n",
    # a good reply with a line nobody asked for in the same write
    "extra": b"250 2.0.0 Ok: queued\r\n250 2.0.0 and this was not asked for\r\n",
    # a reply line that never ends (no CRLF, connection stays open)
    "partial": b"250 2.0.0 Ok",
}

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
MAX_COMMAND_LINE = 64 * 1024          # generous: we record, the proxy enforces
STRICT_EOD = b"\r\n.\r\n"
LENIENT_EOD = re.compile(rb"(\r\n|\n|\r)\x00?\.(\r\r\n|\r\n|\n|\r)")


class Closed(Exception):
    """The peer closed the connection (or we did, on purpose)."""


def xtext_decode(value):
    """xtext_decode - RFC 3461 xtext: "+HH" stands for the octet 0xHH."""
    return re.sub(r"\+([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), value)


def parse_proxy_v2(header):
    """parse_proxy_v2 - decode a PROXY protocol v2 header into a dict."""
    ver_cmd, fam, length = header[12], header[13], struct.unpack("!H", header[14:16])[0]
    body = header[16:16 + length]
    info = {"version": 2, "raw_hex": header.hex(),
            "version_nibble": ver_cmd >> 4,
            "command": {0: "LOCAL", 1: "PROXY"}.get(ver_cmd & 0xF, "cmd-%d" % (ver_cmd & 0xF)),
            "family_byte": fam, "length": length}
    addr_len = 0
    if fam == 0x11:                      # TCP over IPv4
        info["family"] = "TCP4"
        addr_len = 12
        if len(body) >= 12:
            info["src"] = socket.inet_ntop(socket.AF_INET, body[0:4])
            info["dst"] = socket.inet_ntop(socket.AF_INET, body[4:8])
            info["sport"], info["dport"] = struct.unpack("!HH", body[8:12])
    elif fam == 0x21:                    # TCP over IPv6
        info["family"] = "TCP6"
        addr_len = 36
        if len(body) >= 36:
            info["src"] = socket.inet_ntop(socket.AF_INET6, body[0:16])
            info["dst"] = socket.inet_ntop(socket.AF_INET6, body[16:32])
            info["sport"], info["dport"] = struct.unpack("!HH", body[32:36])
    else:
        info["family"] = "other-0x%02x" % fam
    tlvs = []
    rest = body[addr_len:]
    while len(rest) >= 3:
        t, ln = rest[0], struct.unpack("!H", rest[1:3])[0]
        tlvs.append({"type": t, "value_hex": rest[3:3 + ln].hex()})
        rest = rest[3 + ln:]
    info["tlvs"] = tlvs
    return info


def parse_proxy_v1(line):
    """parse_proxy_v1 - decode "PROXY TCP4 src dst sport dport" into a dict."""
    text = line.decode("latin-1")
    info = {"version": 1, "raw": text}
    parts = text.rstrip("\r\n").split(" ")
    if len(parts) >= 2:
        info["proto"] = parts[1]
    if len(parts) == 6:
        info["src"], info["dst"] = parts[2], parts[3]
        try:
            info["sport"], info["dport"] = int(parts[4]), int(parts[5])
        except ValueError:
            info["bad_ports"] = True
    return info


class Connection:
    """Connection - one SMTP session with a client, and its records."""

    def __init__(self, server, number, reader, writer):
        self.server = server
        self.opts = server.opts
        self.number = number
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()
        self.base = os.path.join(self.opts.dir, "conn-%04d" % number)
        self.raw_file = open(self.base + ".in", "wb")
        peer = writer.get_extra_info("peername") or ("?", 0)
        self.log = {"id": number, "peer": "%s:%d" % (peer[0], peer[1]),
                    "started": time.time(), "closed": None, "proxy": None,
                    "xclient": [], "xclient_attrs": [], "helo": None,
                    "commands": [], "replies": [], "messages": [],
                    "faulted": False, "end": None, "tls": None, "starttls_pipelined": None}
        self.mail_from = None
        self.rcpts = []
        self.faulted = False   # faults apply to this connection?

    # -- records -------------------------------------------------------------

    def save(self):
        tmp = self.base + ".json.tmp"
        with open(tmp, "w") as f:
            json.dump(self.log, f, indent=1)
        os.replace(tmp, self.base + ".json")

    def note(self, text):
        if self.opts.verbose:
            print("conn %d: %s" % (self.number, text), file=sys.stderr, flush=True)

    # -- input ---------------------------------------------------------------

    async def fill(self):
        data = await self.reader.read(65536)
        if not data:
            raise Closed("client-eof")
        self.raw_file.write(data)
        self.raw_file.flush()
        self.buf += data

    async def read_line(self):
        """read_line - one line ending in LF, terminator included."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > MAX_COMMAND_LINE:
                line = bytes(self.buf)
                self.buf.clear()
                return line
            await self.fill()

    # -- output --------------------------------------------------------------

    async def send(self, data):
        self.log["replies"].append(data.decode("latin-1"))
        self.save()
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self, stage, normal):
        """reply - answer at STAGE: the normal reply, or the configured fault."""
        opts = self.opts
        if self.faulted:
            delay = opts.delay.get(stage)
            if delay:
                self.note("delaying %s reply by %ss" % (stage, delay))
                await asyncio.sleep(delay)
            if stage in opts.disconnect:
                raise Closed("fault-disconnect:" + stage)
            if stage in opts.bad_reply:
                await self.send(BAD_REPLIES[opts.bad_reply[stage]])
                if opts.bad_reply[stage] == "partial":
                    await asyncio.sleep(3600)
                return False
            if stage in opts.reply:
                await self.send(opts.reply[stage].encode("latin-1") + b"\r\n")
                return False
        await self.send(normal)
        return True

    # -- protocol ------------------------------------------------------------

    async def read_proxy_header(self):
        while len(self.buf) < 16 and not self.buf.startswith(b"PROXY ") and b"\n" not in self.buf:
            await self.fill()
        if self.buf.startswith(V2_SIGNATURE[:len(self.buf)]) and len(self.buf) >= 12 \
                and self.buf[:12] == V2_SIGNATURE:
            while len(self.buf) < 16:
                await self.fill()
            total = 16 + struct.unpack("!H", self.buf[14:16])[0]
            while len(self.buf) < total:
                await self.fill()
            header = bytes(self.buf[:total])
            del self.buf[:total]
            self.log["proxy"] = parse_proxy_v2(header)
        elif self.buf.startswith(b"PROXY "):
            line = await self.read_line()
            self.log["proxy"] = parse_proxy_v1(line)
        else:
            self.log["proxy"] = {"version": None, "error": "no PROXY header",
                                 "first_bytes": bytes(self.buf[:64]).decode("latin-1")}
            self.save()
            raise Closed("no-proxy-header")
        self.save()

    def ehlo_reply(self, name):
        keywords = ["PIPELINING", "SIZE %d" % self.opts.size]
        if not self.opts.no_8bitmime:
            keywords.append("8BITMIME")
        keywords.append("ENHANCEDSTATUSCODES")
        if not self.opts.no_xclient:
            keywords.append("XCLIENT ADDR PORT HELO PROTO NAME LOGIN DESTADDR DESTPORT")
        if self.server.tls_context and self.log["tls"] is None:
            keywords.append("STARTTLS")
        lines = [self.opts.hostname] + keywords
        out = b""
        for i, text in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            out += ("250%s%s\r\n" % (sep, text)).encode()
        return out

    def mark_faulted(self):
        self.server.mail_sessions += 1
        if self.server.mail_sessions >= self.opts.fault_after:
            self.faulted = True
            self.log["faulted"] = True

    async def run(self):
        opts = self.opts
        self.faulted = opts.fault_after <= 1
        self.log["faulted"] = self.faulted
        if opts.proxy_protocol:
            await self.read_proxy_header()
        greeting = ("220 %s ESMTP recording backend\r\n" % opts.hostname).encode()
        await self.reply("CONNECT", greeting)
        while True:
            line = await self.read_line()
            text = line.decode("latin-1")
            self.log["commands"].append(text)
            self.save()
            self.note(repr(text))
            word, _, arg = text.rstrip("\r\n").partition(" ")
            verb = word.upper()
            if verb == "EHLO":
                self.log["helo"] = arg
                await self.reply("EHLO", self.ehlo_reply(arg))
            elif verb == "HELO":
                self.log["helo"] = arg
                await self.reply("HELO", ("250 %s\r\n" % opts.hostname).encode())
            elif verb == "XCLIENT" and not opts.no_xclient:
                self.log["xclient"].append(text)
                attrs = {}
                for item in arg.split():
                    key, _, value = item.partition("=")
                    attrs.setdefault(key.upper(), []).append(xtext_decode(value))
                self.log["xclient_attrs"].append(attrs)
                greeting = ("220 %s ESMTP recording backend (after XCLIENT)\r\n" % opts.hostname).encode()
                await self.reply("XCLIENT", greeting)
            elif verb == "MAIL":
                self.mark_faulted()
                self.mail_from = arg
                self.rcpts = []
                await self.reply("MAIL", b"250 2.1.0 Ok\r\n")
            elif verb == "RCPT":
                if self.mail_from is None:
                    await self.send(b"503 5.5.1 Error: need MAIL command\r\n")
                    continue
                if await self.reply("RCPT", b"250 2.1.5 Ok\r\n"):
                    self.rcpts.append(arg)
            elif verb == "DATA":
                if not self.rcpts:
                    await self.send(b"554 5.5.1 Error: no valid recipients\r\n")
                    continue
                if await self.reply("DATA", b"354 End data with <CR><LF>.<CR><LF>\r\n"):
                    await self.read_data()
            elif verb == "RSET":
                self.mail_from, self.rcpts = None, []
                await self.reply("RSET", b"250 2.0.0 Ok\r\n")
            elif verb == "NOOP":
                await self.reply("NOOP", b"250 2.0.0 Ok\r\n")
            elif verb == "VRFY":
                await self.reply("VRFY", b"252 2.0.0 Cannot VRFY\r\n")
            elif verb == "STARTTLS" and self.server.tls_context and self.log["tls"] is None:
                await self.starttls()
            elif verb == "QUIT":
                await self.reply("QUIT", b"221 2.0.0 Bye\r\n")
                raise Closed("client-quit")
            else:
                await self.send(b"502 5.5.2 Error: command not recognized\r\n")

    async def starttls(self):
        """starttls - 220, then TLS on the same connection; everything said before is forgotten."""
        if self.buf:
            # pipelined plaintext must never count as commands inside TLS (CVE-2011-0411)
            self.log["starttls_pipelined"] = bytes(self.buf).decode("latin-1")
            self.buf.clear()
        if not await self.reply("STARTTLS", b"220 2.0.0 Ready to start TLS\r\n"):
            return
        await self.writer.start_tls(self.server.tls_context)
        obj = self.writer.get_extra_info("ssl_object")
        self.log["tls"] = {"version": obj.version(), "cipher": obj.cipher()[0]}
        self.log["helo"] = None
        self.mail_from, self.rcpts = None, []
        self.save()
        self.note("TLS %s %s" % (self.log["tls"]["version"], self.log["tls"]["cipher"]))

    def find_eod(self, data):
        """find_eod - (end of message body, end of terminator) or None."""
        framed = b"\r\n" + data          # the DATA line's CRLF precedes the body
        if self.opts.lenient_eod:
            m = LENIENT_EOD.search(framed)
            if not m:
                return None
            return max(m.start() - 2 + len(m.group(1)), 0), m.end() - 2
        i = framed.find(STRICT_EOD)
        if i < 0:
            return None
        return i, i + len(STRICT_EOD) - 2

    async def read_data(self):
        opts = self.opts
        index = len(self.log["messages"]) + 1
        entry = {"index": index, "mail_from": self.mail_from, "rcpts": list(self.rcpts),
                 "complete": False, "size": 0, "file": None}
        self.log["messages"].append(entry)
        data = bytearray(self.buf)
        self.buf.clear()
        try:
            while True:
                # a backend that dies mid-message never sees the end of it
                if self.faulted and "MIDDATA" in opts.disconnect and len(data) >= opts.middata_bytes:
                    raise Closed("fault-disconnect:MIDDATA")
                found = self.find_eod(bytes(data))
                if found:
                    body_end, term_end = found
                    self.buf[:0] = data[term_end:]          # pipelined commands
                    body = bytes(data[:body_end])
                    break
                chunk = await self.reader.read(65536)
                if not chunk:
                    raise Closed("client-eof-in-data")
                self.raw_file.write(chunk)
                self.raw_file.flush()
                data += chunk
        except (Closed, ConnectionError, asyncio.CancelledError):
            name = "%s-msg-%d.partial" % (self.base, index)
            with open(name, "wb") as f:
                f.write(data)
            entry.update(file=os.path.basename(name), size=len(data))
            self.save()
            raise
        name = "%s-msg-%d.eml" % (self.base, index)
        with open(name, "wb") as f:
            f.write(body)
        entry.update(file=os.path.basename(name), size=len(body), complete=True)
        self.save()
        self.note("message %d: %d bytes" % (index, len(body)))
        queued = ("250 2.0.0 Ok: queued as R%04d%02d\r\n" % (self.number, index)).encode()
        await self.reply("DOT", queued)
        self.mail_from, self.rcpts = None, []

    async def serve(self):
        end = "unknown"
        try:
            await self.run()
        except Closed as e:
            end = str(e)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError) as e:
            end = "connection-error:%s" % type(e).__name__
        except asyncio.CancelledError:
            end = "server-shutdown"
        finally:
            self.log["end"] = end
            self.log["closed"] = time.time()
            self.save()
            self.raw_file.close()
            self.note("closed (%s)" % end)
            try:
                self.writer.close()
            except Exception:
                pass


class Server:
    def __init__(self, opts):
        self.opts = opts
        self.count = 0
        self.mail_sessions = 0
        self.tls_context = None
        if opts.starttls:
            cert, _, key = opts.starttls.partition(",")
            self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_context.load_cert_chain(cert, key or None)

    async def handle(self, reader, writer):
        self.count += 1
        await Connection(self, self.count, reader, writer).serve()


def stage_map(values, name, convert=str):
    out = {}
    for item in values or []:
        stage, sep, value = item.partition(":")
        stage = stage.upper()
        if not sep or stage not in STAGES:
            sys.exit("--%s: want STAGE:VALUE with STAGE in %s, got %r" % (name, ",".join(STAGES), item))
        out[stage] = convert(value)
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--dir", required=True, help="where to write the records")
    p.add_argument("--hostname", default="backend.test")
    p.add_argument("--size", type=int, default=52428800)
    p.add_argument("--no-xclient", action="store_true")
    p.add_argument("--no-8bitmime", action="store_true")
    p.add_argument("--proxy-protocol", action="store_true")
    p.add_argument("--starttls", metavar="CERT,KEY", help="offer STARTTLS with this certificate and key")
    p.add_argument("--lenient-eod", action="store_true")
    p.add_argument("--reply", action="append", metavar="STAGE:TEXT")
    p.add_argument("--disconnect", action="append", metavar="STAGE", default=[])
    p.add_argument("--delay", action="append", metavar="STAGE:SECONDS")
    p.add_argument("--bad-reply", action="append", metavar="STAGE:KIND")
    p.add_argument("--middata-bytes", type=int, default=10)
    p.add_argument("--fault-after", type=int, default=1)
    p.add_argument("--verbose", action="store_true")
    opts = p.parse_args(argv)
    opts.reply = stage_map(opts.reply, "reply")
    opts.delay = stage_map(opts.delay, "delay", float)
    opts.bad_reply = stage_map(opts.bad_reply, "bad-reply")
    for kind in opts.bad_reply.values():
        if kind not in BAD_REPLIES:
            sys.exit("--bad-reply: KIND is one of %s" % ", ".join(BAD_REPLIES))
    opts.disconnect = [s.upper() for s in opts.disconnect]
    for s in opts.disconnect:
        if s not in STAGES:
            sys.exit("--disconnect: STAGE is one of %s" % ", ".join(STAGES))
    return opts


async def main(argv=None):
    opts = parse_args(argv)
    os.makedirs(opts.dir, exist_ok=True)
    server = Server(opts)
    srv = await asyncio.start_server(server.handle, opts.host, opts.port, reuse_address=True)
    port = srv.sockets[0].getsockname()[1]
    print("READY %d" % port, flush=True)
    async with srv:
        await srv.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
