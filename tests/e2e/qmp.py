"""Minimal QMP and HMP clients over unix sockets (Python standard library).

QMP: commands return the "return" member or raise QMPError; events are
queued with the host time they arrived, so a test can measure latency and
wait for a given event.  HMP: a real human monitor on its own socket,
driven as a person would type into it.
"""
import json
import socket
import threading
import time


class QMPError(Exception):
    def __init__(self, cmd, err):
        self.cmd = cmd
        self.cls = err.get("class")
        self.desc = err.get("desc", "")
        super().__init__("%s: %s: %s" % (cmd, self.cls, self.desc))


class QMP:
    def __init__(self, path, timeout=30):
        self.sock = _connect(path, timeout)
        self.file = self.sock.makefile("rwb", buffering=0)
        self.events = []            # (host time, event dict), in order
        self.cond = threading.Condition()
        self.replies = []
        self.closed = False
        greeting = json.loads(self.file.readline())
        assert "QMP" in greeting, greeting
        threading.Thread(target=self._reader, daemon=True).start()
        self.cmd("qmp_capabilities")

    def _reader(self):
        try:
            self._read_loop()
        except OSError:
            pass
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def _read_loop(self):
        for raw in self.file:
            msg = json.loads(raw)
            with self.cond:
                if "event" in msg:
                    self.events.append((time.monotonic(), msg))
                else:
                    self.replies.append(msg)
                self.cond.notify_all()

    def cmd(self, name, timeout=60, **args):
        """Run a command; keyword names may use _ for - (qom_path)."""
        msg = {"execute": name}
        if args:
            msg["arguments"] = {k.replace("_", "-") if k != "qom_path" else
                                "qom-path": v for k, v in args.items()}
        return self.raw(msg, timeout)

    def raw(self, msg, timeout=60):
        with self.cond:
            self.file.write(json.dumps(msg).encode() + b"\n")
            end = time.monotonic() + timeout
            while not self.replies:
                if self.closed or not self.cond.wait(end - time.monotonic()):
                    raise TimeoutError("no QMP reply to %s" % msg["execute"])
            rep = self.replies.pop(0)
        if "error" in rep:
            raise QMPError(msg["execute"], rep["error"])
        return rep["return"]

    def error_of(self, name, **args):
        """Run a command that must fail; return its QMPError."""
        try:
            ret = self.cmd(name, **args)
        except QMPError as e:
            return e
        raise AssertionError("%s %s succeeded (%r), expected an error"
                             % (name, args, ret))

    def mark(self):
        """Index to pass as since= to only look at later events."""
        with self.cond:
            return len(self.events)

    def find_events(self, name, since=0, **data):
        with self.cond:
            return [(t, e) for t, e in self.events[since:]
                    if e["event"] == name and
                    all(e.get("data", {}).get(k) == v
                        for k, v in data.items())]

    def wait_event(self, name, timeout=30, since=0, **data):
        """Wait for an event whose data has the given members; return
        (host time, event).  Raises TimeoutError."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                found = self.find_events(name, since, **data)
                if found:
                    return found[0]
                left = end - time.monotonic()
                if left <= 0 or self.closed:
                    raise TimeoutError("no %s %s within %ss"
                                       % (name, data, timeout))
                self.cond.wait(left)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class HMP:
    PROMPT = b"(qemu) "

    def __init__(self, path, timeout=30):
        self.sock = _connect(path, timeout)
        self.sock.settimeout(timeout)
        self._read_to_prompt()

    def _read_to_prompt(self):
        buf = b""
        while not buf.endswith(self.PROMPT):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("HMP closed")
            buf += chunk
        return buf[:-len(self.PROMPT)]

    def cmd(self, line):
        """Type a command; return what the monitor printed (no echo)."""
        self.sock.sendall(line.encode() + b"\n")
        out = self._read_to_prompt().decode(errors="replace")
        out = out.replace("\r", "")
        # The monitor echoes the typed line (with terminal escapes).
        lines = out.split("\n")
        return "\n".join(lines[1:]).strip("\n")

    def close(self):
        self.sock.close()


def _connect(path, timeout):
    end = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            if time.monotonic() > end:
                raise
            time.sleep(0.05)
