"""HTTP endpoints next to /ws."""
import urllib.error
import urllib.request


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_healthz_and_readyz(broker):
    status, _ = get(f"http://{broker.http_addr}/healthz")
    assert status == 200
    status, body = get(f"http://{broker.http_addr}/readyz")
    assert status == 200, body


def test_ws_endpoint_rejects_plain_get(broker):
    """/ws without an Upgrade is not a WebSocket handshake: it must not answer 101 or 200."""
    status, _ = get(f"http://{broker.http_addr}/ws")
    assert status >= 400, status
