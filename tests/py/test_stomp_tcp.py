"""stomp.py over the plain TCP STOMP listener."""
import pytest

from conftest import bounded_disconnect, uid


def test_connect_12_connected_headers(scope):
    conn = scope.stomp("1.2")
    (frame,) = conn.listener.connected.snapshot()
    h = frame.headers
    assert h.get("version") == "1.2", h
    assert h.get("session"), h
    assert h.get("server", "").startswith("stompbus/"), h
    assert "heart-beat" in h, h


def test_connect_12_with_connect_command(scope):
    conn = scope.stomp("1.2", with_connect_command=True)
    assert conn.listener.connected.snapshot()[0].headers.get("version") == "1.2"


def test_topic_subscribe_send(scope):
    dest = "/topic/py-topic"
    sub = scope.stomp(name="sub")
    rid = uid("sub")
    sub.subscribe(dest, id="s1", ack="auto", receipt=rid)
    sub.listener.wait_receipt(rid)
    pub = scope.stomp(name="pub")
    for i in range(20):
        pub.send(dest, f"m{i}")
    got = sub.listener.messages.count(20)
    assert [m.body for m in got] == [f"m{i}" for i in range(20)]
    assert all(m.headers["destination"] == dest for m in got)
    assert all(m.headers["subscription"] == "s1" for m in got)
    assert all(m.headers.get("message-id") for m in got)


def test_receipts(scope):
    dest = "/topic/py-receipts"
    c = scope.stomp()
    r1, r2, r3 = uid("sub"), uid("send"), uid("unsub")
    c.subscribe(dest, id="s1", receipt=r1)
    c.listener.wait_receipt(r1)
    c.send(dest, "hello", receipt=r2)
    c.listener.wait_receipt(r2)
    c.listener.messages.count(1)
    c.unsubscribe(id="s1", receipt=r3)
    c.listener.wait_receipt(r3)
    # after the UNSUBSCRIBE receipt nothing reaches s1: a second subscription sees
    # the next message and s1 stays at one
    r4, r5 = uid("sub2"), uid("send2")
    c.subscribe(dest, id="s2", receipt=r4)
    c.listener.wait_receipt(r4)
    c.send(dest, "after", receipt=r5)
    c.listener.wait_receipt(r5)
    got = c.listener.messages.count(2)
    assert [(m.headers["subscription"], m.body) for m in got] == [("s1", "hello"), ("s2", "after")]
    # DISCONNECT with receipt
    r6 = uid("disc")
    assert bounded_disconnect(c, r6), "DISCONNECT receipt within the timeout"
    c.listener.wait_receipt(r6)


def test_client_individual_ack_and_nack_redelivery(scope):
    dest = "/queue/py-ack"
    c = scope.stomp(name="consumer")
    r = uid("sub")
    c.subscribe(dest, id="s1", ack="client-individual", receipt=r)
    c.listener.wait_receipt(r)
    pub = scope.stomp(name="pub")
    rs = uid("send")
    pub.send(dest, "first", receipt=rs)
    pub.listener.wait_receipt(rs)

    (m1,) = c.listener.messages.count(1)
    assert m1.body == "first"
    assert m1.headers.get("ack"), m1.headers
    assert m1.headers.get("redelivered") == "false", m1.headers
    rn = uid("nack")
    c.nack(m1.headers["ack"], receipt=rn)
    c.listener.wait_receipt(rn)

    m2 = c.listener.messages.count(2)[1]
    assert m2.body == "first"
    assert m2.headers.get("redelivered") == "true", m2.headers
    ra = uid("ack")
    c.ack(m2.headers["ack"], receipt=ra)
    c.listener.wait_receipt(ra)

    rm = uid("marker")
    pub.send(dest, "marker", receipt=rm)
    pub.listener.wait_receipt(rm)
    got = c.listener.messages.count(3)
    assert [m.body for m in got] == ["first", "first", "marker"]
    c.ack(got[2].headers["ack"])


def test_client_ack_cumulative(scope):
    """ack:client acknowledges every message up to and including the ACKed one."""
    dest = "/queue/py-client-ack"
    c = scope.stomp(name="consumer")
    r = uid("sub")
    c.subscribe(dest, id="s1", ack="client", receipt=r)
    c.listener.wait_receipt(r)
    pub = scope.stomp(name="pub")
    for b in ("a", "b", "c"):
        rr = uid("send")
        pub.send(dest, b, receipt=rr)
        pub.listener.wait_receipt(rr)
    got = c.listener.messages.count(3)
    assert [m.body for m in got] == ["a", "b", "c"]
    ra = uid("ack")
    c.ack(got[1].headers["ack"], receipt=ra)  # acks a and b
    c.listener.wait_receipt(ra)
    # drop the connection without acking c: only c comes back to a new consumer
    rd = uid("disc")
    assert bounded_disconnect(c, rd), "DISCONNECT receipt within the timeout"
    c2 = scope.stomp(name="consumer2")
    r2 = uid("sub2")
    c2.subscribe(dest, id="s2", ack="client-individual", receipt=r2)
    c2.listener.wait_receipt(r2)
    (m,) = c2.listener.messages.count(1)
    assert m.body == "c"
    c2.ack(m.headers["ack"])
    rm = uid("marker")
    pub.send(dest, "marker", receipt=rm)
    pub.listener.wait_receipt(rm)
    assert [x.body for x in c2.listener.messages.count(2)] == ["c", "marker"]


def test_transaction_commit_and_abort(scope):
    dest = "/topic/py-tx"
    sub = scope.stomp(name="sub")
    r = uid("sub")
    sub.subscribe(dest, id="s1", receipt=r)
    sub.listener.wait_receipt(r)
    pub = scope.stomp(name="pub")

    tx = pub.begin()
    for b in ("t1", "t2", "t3"):
        pub.send(dest, b, transaction=tx)
    ro = uid("outside")
    pub.send(dest, "outside", receipt=ro)
    pub.listener.wait_receipt(ro)
    assert [m.body for m in sub.listener.messages.count(1)] == ["outside"]
    rc = uid("commit")
    pub.commit(tx, receipt=rc)
    pub.listener.wait_receipt(rc)
    assert [m.body for m in sub.listener.messages.count(4)] == ["outside", "t1", "t2", "t3"]

    tx2 = pub.begin()
    for b in ("x1", "x2"):
        pub.send(dest, b, transaction=tx2)
    rab = uid("abort")
    pub.abort(tx2, receipt=rab)
    pub.listener.wait_receipt(rab)
    rm = uid("marker")
    pub.send(dest, "marker", receipt=rm)
    pub.listener.wait_receipt(rm)
    got = sub.listener.messages.count(5)
    assert [m.body for m in got] == ["outside", "t1", "t2", "t3", "marker"]


def test_header_escaping_12(scope):
    dest = "/topic/py-escape"
    sub = scope.stomp(name="sub")
    r = uid("sub")
    sub.subscribe(dest, id="s1", receipt=r)
    sub.listener.wait_receipt(r)
    pub = scope.stomp(name="pub")
    headers = {"x-colon": "a:b", "x-nl": "l1\nl2", "x-bs": "back\\slash", "x-cr": "c\rr"}
    rs = uid("send")
    pub.send(dest, "escaped", headers=headers, receipt=rs)
    pub.listener.wait_receipt(rs)
    (m,) = sub.listener.messages.count(1)
    for k, v in headers.items():
        assert m.headers.get(k) == v, (k, m.headers)


def test_binary_body_over_tcp(scope):
    dest = "/topic/py-binary"
    sub = scope.stomp(name="sub", auto_decode=False)
    r = uid("sub")
    sub.subscribe(dest, id="s1", receipt=r)
    sub.listener.wait_receipt(r)
    pub = scope.stomp(name="pub")
    body = bytes(range(256)) * 4
    rs = uid("send")
    pub.send(dest, body, content_type="application/octet-stream", receipt=rs)
    pub.listener.wait_receipt(rs)
    (m,) = sub.listener.messages.count(1)
    assert m.body == body


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_older_versions_send_and_receive(scope, version):
    dest = f"/topic/py-v{version.replace('.', '')}"
    sub = scope.stomp(version, name=f"sub{version}")
    (cf,) = sub.listener.connected.snapshot()
    if version == "1.1":
        assert cf.headers.get("version") == "1.1", cf.headers
    else:
        # a 1.0 server need not send version; if it does, it must be 1.0
        assert cf.headers.get("version", "1.0") == "1.0", cf.headers
    r = uid("sub")
    sub.subscribe(dest, id="s1", receipt=r)
    sub.listener.wait_receipt(r)
    pub = scope.stomp(version, name=f"pub{version}")
    rs = uid("send")
    pub.send(dest, f"hello {version}", receipt=rs)
    pub.listener.wait_receipt(rs)
    (m,) = sub.listener.messages.count(1)
    assert m.body == f"hello {version}"
    assert m.headers["destination"] == dest


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_older_versions_queue_client_ack(scope, version):
    dest = f"/queue/py-ack-v{version.replace('.', '')}"
    c = scope.stomp(version, name=f"consumer{version}")
    r = uid("sub")
    c.subscribe(dest, id="s1", ack="client", receipt=r)
    c.listener.wait_receipt(r)
    pub = scope.stomp(version, name=f"pub{version}")
    rs = uid("send")
    pub.send(dest, "ack me", receipt=rs)
    pub.listener.wait_receipt(rs)
    (m,) = c.listener.messages.count(1)
    assert m.body == "ack me"
    assert m.headers.get("message-id"), m.headers
    ra = uid("ack")
    if version == "1.0":
        c.ack(m.headers["message-id"], receipt=ra)
    else:
        c.ack(m.headers["message-id"], m.headers["subscription"], receipt=ra)
    c.listener.wait_receipt(ra)


def test_default_stomp_connection(scope, broker):
    """stomp.Connection as most users write it (StompConnection11 in stomp.py 9)."""
    import stomp
    from conftest import Listener
    conn = stomp.Connection([broker.stomp_host_port], reconnect_attempts_max=1, timeout=10)
    listener = Listener("default")
    conn.set_listener("test", listener)
    conn.connect(wait=False)
    try:
        (cf,) = listener.connected.count(1)
        assert cf.headers.get("version") == "1.1", cf.headers
        r = uid("sub")
        conn.subscribe("/topic/py-default", id="1", receipt=r)
        listener.wait_receipt(r)
        conn.send("/topic/py-default", "plain")
        (m,) = listener.messages.count(1)
        assert m.body == "plain"
    finally:
        bounded_disconnect(conn, uid("bye"), 5)
