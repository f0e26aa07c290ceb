"""Harness for the stompbus end-to-end tests with stomp.py (TCP) and
websocket-client (raw STOMP over /ws).

The broker is built once per pytest session and started once per test module
on ephemeral 127.0.0.1 ports. Every wait is bounded; nothing sleeps in place of
synchronisation.
"""
import os
import pathlib
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid

import pytest
import stomp
import websocket

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
TIMEOUT = 10.0


# ------------------------------------------------------------------ waiting

class Collector:
    """Thread-safe list with a bounded wait for a predicate over its items."""

    def __init__(self, name="collector"):
        self.name = name
        self.items = []
        self.cond = threading.Condition()

    def push(self, item):
        with self.cond:
            self.items.append(item)
            self.cond.notify_all()

    def snapshot(self):
        with self.cond:
            return list(self.items)

    def until(self, pred, timeout=TIMEOUT, what="condition"):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred(self.items):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out after {timeout}s waiting for {self.name}: {what} "
                        f"(have {len(self.items)} items: {self.items[-5:]!r})")
                self.cond.wait(left)
            return list(self.items)

    def count(self, n, timeout=TIMEOUT):
        return self.until(lambda items: len(items) >= n, timeout, f"{n} items")


def uid(prefix="id"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ------------------------------------------------------------------ broker

_LOGFMT = re.compile(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_logfmt(line):
    out = {}
    for k, v in _LOGFMT.findall(line):
        if v.startswith('"') and v.endswith('"') and len(v) >= 2:
            v = bytes(v[1:-1], "utf-8").decode("unicode_escape")
        out[k] = v
    return out


class Broker:
    def __init__(self, binary):
        self.binary = binary
        self.proc = None
        self.lines = []
        self.lock = threading.Condition()
        self.http_addr = None
        self.stomp_addr = None
        self.data_dir = None

    @property
    def ws_url(self):
        return f"ws://{self.http_addr}/ws"

    @property
    def stomp_host_port(self):
        host, _, port = self.stomp_addr.rpartition(":")
        return host, int(port)

    def _reader(self, stream):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.lock:
                self.lines.append(line)
                if len(self.lines) > 50000:
                    del self.lines[:10000]
                if "msg=listening" in line:
                    kv = parse_logfmt(line)
                    if kv.get("msg") == "listening":
                        if kv.get("transport") == "http":
                            self.http_addr = kv.get("addr")
                        elif kv.get("transport") == "stomp":
                            self.stomp_addr = kv.get("addr")
                self.lock.notify_all()
        stream.close()

    def start(self, extra_args=()):
        self.data_dir = tempfile.mkdtemp(prefix="stompbus-e2e-py-data-")
        args = [self.binary, "-http", "127.0.0.1:0", "-stomp", "127.0.0.1:0",
                "-data", self.data_dir, "-node", "test", "-log-level", "debug", *extra_args]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=self._reader, args=(stream,), daemon=True).start()
        deadline = time.monotonic() + 20
        with self.lock:
            while not (self.http_addr and self.stomp_addr):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    break
                self.lock.wait(min(left, 0.5))
            ok = bool(self.http_addr and self.stomp_addr)
        if not ok:
            self.stop()
            raise RuntimeError("broker did not report both 'msg=listening' lines within 20 s "
                               f"(exit {self.proc.returncode})\n{self.dump()}")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=12)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def dump(self, n=400):
        with self.lock:
            tail = self.lines[-n:]
            total = len(self.lines)
        return f"--- broker output (last {len(tail)} of {total} lines) ---\n" + "\n".join(tail)


@pytest.fixture(scope="session")
def broker_binary(tmp_path_factory):
    env_bin = os.environ.get("STOMPBUS_BROKER")
    if env_bin:
        return env_bin
    out = tmp_path_factory.mktemp("stompbus-broker") / "broker"
    res = subprocess.run(["go", "build", "-o", str(out), "./cmd/broker"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        pytest.fail(f"go build ./cmd/broker failed:\n{res.stdout}\n{res.stderr}", pytrace=False)
    return str(out)


@pytest.fixture(scope="module")
def broker(broker_binary):
    b = Broker(broker_binary).start()
    yield b
    b.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


# ------------------------------------------------------------------ clients

class Listener(stomp.ConnectionListener):
    """Records everything a stomp.py connection receives."""

    def __init__(self, name):
        self.name = name
        self.connected = Collector(f"{name} CONNECTED")
        self.messages = Collector(f"{name} MESSAGE")
        self.receipts = Collector(f"{name} RECEIPT")
        self.errors = Collector(f"{name} ERROR")
        self.disconnected = Collector(f"{name} disconnected")
        self.log = []

    def on_connected(self, frame):
        self.log.append(f"<<< CONNECTED {frame.headers}")
        self.connected.push(frame)

    def on_message(self, frame):
        self.log.append(f"<<< MESSAGE {frame.headers} {frame.body[:80]!r}")
        self.messages.push(frame)

    def on_receipt(self, frame):
        self.log.append(f"<<< RECEIPT {frame.headers}")
        self.receipts.push(frame.headers.get("receipt-id"))

    def on_error(self, frame):
        self.log.append(f"<<< ERROR {frame.headers} {frame.body!r}")
        self.errors.push(frame)

    def on_disconnected(self):
        self.log.append("disconnected")
        self.disconnected.push(True)

    def on_send(self, frame):
        self.log.append(f">>> {frame.cmd} {frame.headers}")

    def wait_receipt(self, rid, timeout=TIMEOUT):
        self.receipts.until(lambda items: rid in items, timeout, f"RECEIPT {rid}")

    def bodies(self):
        return [m.body for m in self.messages.snapshot()]


def bounded_disconnect(conn, receipt=None, timeout=TIMEOUT):
    """conn.disconnect(receipt) waits without bound for the receipt in stomp.py;
    run it in a thread and drop the socket if it takes longer than timeout.
    Returns True when the disconnect finished in time."""
    t = threading.Thread(target=conn.disconnect, kwargs={"receipt": receipt}, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        try:
            conn.transport.disconnect_socket()
        except Exception:
            pass
        t.join(5)
        return False
    return True


class Scope:
    """Tracks the clients a test opens and closes them at the end."""

    def __init__(self, broker):
        self.broker = broker
        self.conns = []
        self.raws = []

    def stomp(self, version="1.2", name=None, login=None, passcode=None, heartbeats=(0, 0),
              auto_decode=True, with_connect_command=False, headers=None):
        name = name or f"tcp{len(self.conns) + 1}"
        hp = [self.broker.stomp_host_port]
        if version == "1.2":
            # stomp.Connection is StompConnection11 in stomp.py 9; 1.2 is Connection12
            conn = stomp.Connection12(hp, heartbeats=heartbeats, auto_decode=auto_decode,
                                      reconnect_attempts_max=1, timeout=TIMEOUT)
        elif version == "ws":
            # stomp.py's own WebSocket transport (STOMP 1.2, offers no subprotocol)
            host, _, port = self.broker.http_addr.rpartition(":")
            conn = stomp.WSConnection([(host, int(port))], ws_path="/ws", heartbeats=heartbeats,
                                      auto_decode=auto_decode, reconnect_attempts_max=1,
                                      timeout=TIMEOUT)
        elif version == "1.1":
            conn = stomp.Connection11(hp, heartbeats=heartbeats, auto_decode=auto_decode,
                                      reconnect_attempts_max=1, timeout=TIMEOUT)
        elif version == "1.0":
            conn = stomp.Connection10(hp, auto_decode=auto_decode,
                                      reconnect_attempts_max=1, timeout=TIMEOUT)
        else:
            raise ValueError(version)
        listener = Listener(name)
        conn.set_listener("test", listener)
        self.conns.append((conn, listener))
        kwargs = {"headers": headers or {}}
        if version != "1.0":
            kwargs["with_connect_command"] = with_connect_command
        conn.connect(login, passcode, wait=False, **kwargs)
        listener.connected.count(1)
        conn.listener = listener
        return conn

    def ws(self, protocols=("v12.stomp",), name=None):
        r = RawWs(self.broker.ws_url, protocols, name or f"ws{len(self.raws) + 1}")
        self.raws.append(r)
        return r

    def close(self):
        for conn, _ in self.conns:
            try:
                if conn.is_connected():
                    bounded_disconnect(conn, uid("bye"), 5)
            except Exception:
                pass
        for r in self.raws:
            r.close()

    def dump(self):
        parts = []
        for _conn, listener in self.conns:
            parts.append(f"--- stomp.py {listener.name} log ---\n" + "\n".join(listener.log[-150:]))
        for r in self.raws:
            parts.append(f"--- ws {r.name} log ---\n" + "\n".join(r.log[-150:]))
        parts.append(self.broker.dump())
        return "\n".join(parts)


@pytest.fixture
def scope(broker, request):
    s = Scope(broker)
    yield s
    s.close()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(s.dump())


# ------------------------------------------------------------------ raw STOMP over WebSocket

def encode_frame(command, headers=None, body=b""):
    if isinstance(body, str):
        body = body.encode("utf-8")
    head = command + "\n" + "".join(f"{k}:{v}\n" for k, v in (headers or {}).items()) + "\n"
    return head.encode("utf-8") + body + b"\0"


class Frame:
    def __init__(self, command, headers, body):
        self.command = command
        self.headers = headers
        self.body = body

    def __repr__(self):
        return f"Frame({self.command!r}, {self.headers!r}, {self.body[:60]!r})"


def parse_frames(buf):
    """Parses as many complete frames from buf as there are; returns (frames, rest)."""
    frames = []
    while True:
        i = 0
        while i < len(buf) and buf[i:i + 1] in (b"\n", b"\r"):
            i += 1
        buf = buf[i:]
        end = buf.find(b"\n\n")
        end_cr = buf.find(b"\r\n\r\n")
        if end < 0 and end_cr < 0:
            return frames, buf
        if end >= 0 and (end_cr < 0 or end < end_cr):
            sep = 2
        else:
            end, sep = end_cr, 4
        lines = buf[:end].decode("utf-8").replace("\r\n", "\n").split("\n")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.setdefault(k, v)
        start = end + sep
        if "content-length" in headers:
            stop = start + int(headers["content-length"])
            if len(buf) < stop + 1:
                return frames, buf
        else:
            stop = buf.find(b"\0", start)
            if stop < 0:
                return frames, buf
        frames.append(Frame(lines[0], headers, buf[start:stop]))
        buf = buf[stop + 1:]


class RawWs:
    """A WebSocket client (websocket-client) that speaks STOMP frames by hand."""

    def __init__(self, url, protocols, name):
        self.name = name
        self.log = []
        self.frames = Collector(f"{name} frames")
        self.ws_messages = []
        self.closed = threading.Event()
        kwargs = {"timeout": TIMEOUT}
        if protocols:
            kwargs["subprotocols"] = list(protocols)
        self.ws = websocket.create_connection(url, **kwargs)
        self.ws.settimeout(None)
        self.log.append(f"open subprotocol={self.ws.getsubprotocol()!r}")
        self._buf = b""
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        try:
            while True:
                opcode, data = self.ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
                if isinstance(data, str):
                    data = data.encode("utf-8")
                self.ws_messages.append((opcode, data))
                frames, self._buf = parse_frames(self._buf + data)
                for f in frames:
                    self.log.append(f"<<< {f!r}")
                    self.frames.push(f)
        except Exception as e:  # connection closed or broken
            self.log.append(f"reader ended: {e!r}")
        finally:
            self.closed.set()

    def send(self, command, headers=None, body=b""):
        self.log.append(f">>> {command} {headers}")
        data = encode_frame(command, headers, body)
        if isinstance(body, (bytes, bytearray)) and body:
            self.ws.send_binary(data)
        else:
            self.ws.send(data.decode("utf-8"))

    def next_frame(self, command, start=0, timeout=TIMEOUT):
        items = self.frames.until(lambda fs: any(f.command == command for f in fs[start:]),
                                  timeout, f"{command} frame")
        return next(f for f in items[start:] if f.command == command)

    def connect(self, **headers):
        hdrs = {"accept-version": "1.2", "host": "127.0.0.1"}
        hdrs.update(headers)
        self.send("CONNECT", hdrs)
        return self.next_frame("CONNECTED")

    def subscribe(self, destination, sub_id, **headers):
        rid = uid("ws-sub")
        self.send("SUBSCRIBE", {"id": sub_id, "destination": destination, "receipt": rid, **headers})
        self.wait_receipt(rid)

    def wait_receipt(self, rid, timeout=TIMEOUT):
        self.frames.until(lambda fs: any(f.command == "RECEIPT" and f.headers.get("receipt-id") == rid
                                         for f in fs), timeout, f"RECEIPT {rid}")

    def messages(self):
        return [f for f in self.frames.snapshot() if f.command == "MESSAGE"]

    def wait_messages(self, n, timeout=TIMEOUT):
        self.frames.until(lambda fs: sum(1 for f in fs if f.command == "MESSAGE") >= n,
                          timeout, f"{n} MESSAGE frames")
        return self.messages()

    def close(self):
        # the reader thread owns recv; send a close frame and then wake it up
        try:
            self.ws.send_close()
        except Exception:
            pass
        try:
            self.ws.abort()
        except Exception:
            pass
        self.closed.wait(5)
