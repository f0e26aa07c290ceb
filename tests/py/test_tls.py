"""STOMP over TLS with Python's ssl module: by default the broker sends no
TLS session tickets (Python's ssl corrupts records when one thread reads while
another writes and a TLS 1.3 ticket arrives after the handshake);
-tls-session-tickets on sends them."""
import socket
import ssl
import subprocess

import pytest
import stomp

from conftest import TIMEOUT, Broker, Listener, bounded_disconnect, uid


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return str(crt), str(key)


def tls_broker(binary, cert, *args):
    crt, key = cert
    return Broker(binary).start(["-tls-cert", crt, "-tls-key", key, *args])


def ticket_received(broker, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    host, port = broker.stomp_host_port
    with socket.create_connection((host, port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            s.sendall(b"CONNECT\naccept-version:1.2\nhost:x\n\n\x00")
            got = b""
            while b"\x00" not in got:
                chunk = s.recv(4096)
                assert chunk, f"connection closed after {got!r}"
                got += chunk
            assert got.startswith(b"CONNECTED\n"), got
            # A TLS 1.3 ticket comes after the handshake, before CONNECTED.
            return s.session is not None and s.session.has_ticket


@pytest.mark.parametrize("args,want", [((), False), (("-tls-session-tickets", "off"), False),
                                       (("-tls-session-tickets", "on"), True)])
def test_session_tickets(broker_binary, cert, args, want):
    b = tls_broker(broker_binary, cert, *args)
    try:
        assert ticket_received(b, cert[0]) is want
    finally:
        b.stop()


def test_stomp_py_over_tls(broker_binary, cert):
    """stomp.py reads on its receiver thread while the test thread sends."""
    b = tls_broker(broker_binary, cert)
    try:
        conn = stomp.Connection12([b.stomp_host_port], reconnect_attempts_max=1, timeout=TIMEOUT)
        conn.set_ssl(for_hosts=[b.stomp_host_port], ca_certs=cert[0])
        lst = Listener("tls")
        conn.set_listener("l", lst)
        conn.connect(wait=True)
        dest = "/topic/" + uid("tls")
        conn.subscribe(dest, id="1", ack="auto", headers={"receipt": "s1"})
        lst.wait_receipt("s1")
        for i in range(50):
            conn.send(dest, f"m{i}")
        lst.messages.count(50)
        assert lst.bodies() == [f"m{i}" for i in range(50)]
        assert bounded_disconnect(conn)
    finally:
        b.stop()
