"""Dead letters with stomp.py over TCP: NACK requeue:false, the delivery
limit, a queue policy's dead-letter destination and ttl, and max-length's
ERROR."""
import time

import pytest

from conftest import Broker, uid

TTL = 0.3
POLICIES = ",".join([
    "/queue/py-orders.*=dead-letter:/queue/py-failed",
    f"/queue/py-ttl=ttl:{int(TTL * 1000)}ms",
    "/queue/py-short=max-length:2",
])


@pytest.fixture(scope="module")
def broker(broker_binary):
    b = Broker(broker_binary).start(["-queue-max-deliveries", "2", "-queue-policies", POLICIES])
    yield b
    b.stop()


def send_sync(conn, dest, body):
    r = uid("send")
    conn.send(dest, body, receipt=r)
    conn.listener.wait_receipt(r)


def subscribe_sync(conn, dest, sub_id, **headers):
    r = uid("sub")
    conn.subscribe(dest, id=sub_id, ack="client-individual", receipt=r, headers=headers)
    conn.listener.wait_receipt(r)


def nack_sync(conn, m, **headers):
    r = uid("nack")
    conn.nack(m.headers["ack"], receipt=r, **headers)
    conn.listener.wait_receipt(r)


def expect_dead_letter(scope, dlq, body, origin, reason, count=None):
    d = scope.stomp(name=f"dlq {dlq}")
    subscribe_sync(d, dlq, "dlq")
    (m,) = d.listener.messages.count(1)
    h = m.headers
    assert m.body == body, h
    assert h.get("x-dead-letter-reason") == reason, h
    assert h.get("x-original-destination") == origin, h
    assert h.get("destination") == dlq, h
    if count is not None:
        assert h.get("x-delivery-count") == count, h
    d.ack(h["ack"])


def test_nack_requeue_false_dead_letters(scope):
    dest = "/queue/py-rejected"
    pub = scope.stomp(name="pub")
    send_sync(pub, dest, "bad")
    c = scope.stomp(name="consumer")
    subscribe_sync(c, dest, "s1")
    (m,) = c.listener.messages.count(1)
    assert m.headers.get("redelivered") == "false", m.headers
    nack_sync(c, m, requeue="false")
    send_sync(pub, dest, "next")
    got = c.listener.messages.count(2)
    assert [x.body for x in got] == ["bad", "next"], "the rejected message is not delivered again"
    c.ack(got[1].headers["ack"])
    expect_dead_letter(scope, dest + ".dlq", "bad", dest, "rejected", "1")


def test_delivery_limit_dead_letters(scope):
    dest = "/queue/py-poison"
    pub = scope.stomp(name="pub")
    send_sync(pub, dest, "poison")
    c = scope.stomp(name="consumer")
    subscribe_sync(c, dest, "s1", **{"prefetch-count": "1"})
    nack_sync(c, c.listener.messages.count(1)[0])
    nack_sync(c, c.listener.messages.count(2)[1])
    send_sync(pub, dest, "next")
    got = c.listener.messages.count(3)
    assert [x.body for x in got] == ["poison", "poison", "next"]
    c.ack(got[2].headers["ack"])
    expect_dead_letter(scope, dest + ".dlq", "poison", dest, "delivery-limit", "2")


def test_policy_dead_letter_destination(scope):
    pub = scope.stomp(name="pub")
    c = scope.stomp(name="consumer")
    for i, dest in enumerate(["/queue/py-orders.eu", "/queue/py-orders.us"]):
        send_sync(pub, dest, "from " + dest)
        subscribe_sync(c, dest, f"s{i}")
        nack_sync(c, c.listener.messages.count(i + 1)[i], requeue="false")
    d = scope.stomp(name="failed")
    subscribe_sync(d, "/queue/py-failed", "f")
    got = d.listener.messages.count(2)
    assert sorted(m.headers.get("x-original-destination") for m in got) == ["/queue/py-orders.eu", "/queue/py-orders.us"]
    for m in got:
        assert m.body == "from " + m.headers["x-original-destination"]
        assert m.headers.get("x-dead-letter-reason") == "rejected"
        d.ack(m.headers["ack"])


def test_policy_ttl_expires_to_dead_letter(scope):
    dest = "/queue/py-ttl"
    pub = scope.stomp(name="pub")
    send_sync(pub, dest, "stale")
    time.sleep(TTL + 0.1)  # the message's age is what is tested
    send_sync(pub, dest, "fresh")
    c = scope.stomp(name="consumer")
    subscribe_sync(c, dest, "s1")
    (m,) = c.listener.messages.count(1)
    assert m.body == "fresh", "the expired message is not delivered"
    c.ack(m.headers["ack"])
    expect_dead_letter(scope, dest + ".dlq", "stale", dest, "expired")


def test_policy_max_length_refuses_with_error(scope):
    dest = "/queue/py-short"
    pub = scope.stomp(name="pub")
    send_sync(pub, dest, "1")
    send_sync(pub, dest, "2")
    pub.send(dest, "3", receipt="third")
    (err,) = pub.listener.errors.count(1)
    assert err.headers.get("message") == "queue full", err.headers
    assert err.headers.get("receipt-id") == "third", err.headers
    assert "third" not in pub.listener.receipts.snapshot()
    c = scope.stomp(name="consumer")
    subscribe_sync(c, dest, "s1")
    got = c.listener.messages.count(2)
    assert [m.body for m in got] == ["1", "2"]
    for m in got:
        c.ack(m.headers["ack"])
