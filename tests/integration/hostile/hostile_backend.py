"""hostile_backend - a scripted backend MTA that misbehaves on purpose.

A plain-socket SMTP server on 127.0.0.1 (threads, in the test process).
It answers like a normal MTA except at the stages its script names, where
it runs the steps given instead of its normal reply:

    b = ScriptedBackend().start()
    b.arm({"MAIL": [("write", b"250 2.1.0 Ok\\r\\n250 2.1.5 injected\\r\\n")]})
    ...                                  # one connection gets the script
    b.stop()

Stages: CONNECT (the greeting), EHLO, MAIL, RCPT, DATA, DOT (the end-of-
data reply), RSET, NOOP, QUIT.  Steps:

    ("write", bytes)          one write
    ("drip", bytes, seconds)  one write per byte, a pause between them
    ("chunks", [bytes..], s)  several writes, a pause between them
    ("sleep", seconds)
    ("close",)                close the connection (the script ends)
    ("hang",)                 say nothing more, keep the connection open

`arm` applies the script to the next connection accepted (one connection
only, so the session after it meets a normal backend).  Every byte each
connection received is kept (conn.raw), with its command lines and message
bodies, for assertions.
"""

import socket
import threading
import time

NORMAL = {
    "CONNECT": b"220 backend.test ESMTP scripted\r\n",
    "EHLO": b"250-backend.test\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n",
    "HELO": b"250 backend.test\r\n",
    "MAIL": b"250 2.1.0 Ok\r\n",
    "RCPT": b"250 2.1.5 Ok\r\n",
    "DATA": b"354 End data with <CR><LF>.<CR><LF>\r\n",
    "DOT": b"250 2.0.0 Ok: queued as SCRIPTED\r\n",
    "RSET": b"250 2.0.0 Ok\r\n",
    "NOOP": b"250 2.0.0 Ok\r\n",
    "QUIT": b"221 2.0.0 Bye\r\n",
}


class _Stop(Exception):
    pass


class Conn:
    """Conn - what one backend connection received and how it ended."""

    def __init__(self, number, script):
        self.number = number
        self.script = script or {}
        self.raw = b""
        self.commands = []
        self.messages = []
        self.end = None


class ScriptedBackend:
    def __init__(self, host="127.0.0.1"):
        self.host = host
        self.lsock = None
        self.port = None
        self.conns = []
        self.pending = None
        self.lock = threading.Lock()
        self.threads = []
        self.socks = []
        self.stopping = False

    # -- control ------------------------------------------------------------

    def start(self):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((self.host, 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def arm(self, script):
        """arm - the next connection accepted runs this script."""
        with self.lock:
            self.pending = script

    def stop(self):
        self.stopping = True
        for s in list(self.socks):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        for t in self.threads:
            t.join(3)
        if self.lsock:
            self.lsock.close()

    def scripted(self):
        return [c for c in self.conns if c.script]

    def wait_idle(self, timeout=3.0, min_conns=1):
        """wait_idle - until min_conns connections came and all have ended (mxtierd's
        start-up probe: connect, EHLO, QUIT, sent as soon as it starts)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.conns) >= min_conns and all(c.end for c in self.conns):
                return True
            time.sleep(0.05)
        return False

    # -- serving --------------------------------------------------------------

    def _accept_loop(self):
        while not self.stopping:
            try:
                sock, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                script, self.pending = self.pending, None
                conn = Conn(len(self.conns) + 1, script)
                self.conns.append(conn)
                self.socks.append(sock)
            t = threading.Thread(target=self._serve, args=(sock, conn), daemon=True)
            t.start()
            self.threads.append(t)

    def _write(self, sock, data):
        sock.sendall(data)

    def _answer(self, sock, conn, stage):
        steps = conn.script.get(stage)
        if steps is None:
            self._write(sock, NORMAL[stage])
            return
        for step in steps:
            kind = step[0]
            if kind == "write":
                self._write(sock, step[1])
            elif kind == "drip":
                for i in range(len(step[1])):
                    self._write(sock, step[1][i:i + 1])
                    time.sleep(step[2])
            elif kind == "chunks":
                for part in step[1]:
                    self._write(sock, part)
                    time.sleep(step[2])
            elif kind == "sleep":
                time.sleep(step[1])
            elif kind == "close":
                raise _Stop("scripted-close:" + stage)
            elif kind == "hang":
                while not self.stopping:
                    time.sleep(0.05)
                raise _Stop("hang")
            else:
                raise ValueError("unknown step %r" % (step,))

    def _serve(self, sock, conn):
        buf = b""
        sock.settimeout(0.2)

        def fill():
            nonlocal buf
            while True:
                if self.stopping:
                    raise _Stop("server-stop")
                try:
                    data = sock.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    raise _Stop("client-eof")
                conn.raw += data
                buf += data
                return

        try:
            self._answer(sock, conn, "CONNECT")
            while True:
                while b"\n" not in buf:
                    fill()
                line, _, buf = buf.partition(b"\n")
                line += b"\n"
                conn.commands.append(line)
                verb = line.split(b" ", 1)[0].strip().upper()
                if verb == b"DATA":
                    self._answer(sock, conn, "DATA")
                    steps = conn.script.get("DATA")
                    if steps and not (steps[0][0] == "write" and steps[0][1].startswith(b"354")):
                        continue
                    while b"\r\n.\r\n" not in b"\r\n" + buf:
                        fill()
                    framed = b"\r\n" + buf
                    i = framed.find(b"\r\n.\r\n")
                    conn.messages.append(framed[2:i + 2])
                    buf = framed[i + 5:]
                    self._answer(sock, conn, "DOT")
                elif verb.decode("latin-1") in NORMAL and verb != b"CONNECT":
                    self._answer(sock, conn, verb.decode("latin-1"))
                    if verb == b"QUIT":
                        raise _Stop("client-quit")
                else:
                    self._write(sock, b"502 5.5.2 Error: command not recognized\r\n")
        except _Stop as e:
            conn.end = str(e)
        except OSError as e:
            conn.end = "error:%s" % e
        finally:
            conn.end = conn.end or "ended"
            try:
                sock.close()
            except OSError:
                pass
