"""Messages cross between the TCP listener (stomp.py) and /ws (raw STOMP over websocket-client)."""
from conftest import uid


def test_ws_to_tcp_topic(scope):
    dest = "/topic/cross-ws-tcp"
    tcp = scope.stomp(name="tcp-sub")
    r = uid("sub")
    tcp.subscribe(dest, id="s1", receipt=r)
    tcp.listener.wait_receipt(r)
    ws = scope.ws()
    cf = ws.connect()
    assert cf.headers.get("version") == "1.2"
    for i in range(10):
        ws.send("SEND", {"destination": dest, "content-type": "text/plain"}, f"from ws {i}")
    got = tcp.listener.messages.count(10)
    assert [m.body for m in got] == [f"from ws {i}" for i in range(10)]
    assert got[0].headers["destination"] == dest


def test_tcp_to_ws_topic(scope):
    dest = "/topic/cross-tcp-ws"
    ws = scope.ws()
    ws.connect()
    ws.subscribe(dest, "w1")
    tcp = scope.stomp(name="tcp-pub")
    for i in range(10):
        tcp.send(dest, f"from tcp {i}")
    got = ws.wait_messages(10)
    assert [f.body.decode() for f in got] == [f"from tcp {i}" for i in range(10)]
    assert all(f.headers["subscription"] == "w1" for f in got)
    assert all(f.headers["destination"] == dest for f in got)


def test_cross_transport_queue_and_binary(scope):
    dest = "/queue/cross-binary"
    tcp = scope.stomp(name="tcp-sub", auto_decode=False)
    r = uid("sub")
    tcp.subscribe(dest, id="s1", receipt=r)
    tcp.listener.wait_receipt(r)
    ws = scope.ws()
    ws.connect()
    body = bytes(range(256))
    rid = uid("send")
    ws.send("SEND", {"destination": dest, "content-type": "application/octet-stream",
                     "content-length": str(len(body)), "receipt": rid}, body)
    ws.wait_receipt(rid)
    (m,) = tcp.listener.messages.count(1)
    assert m.body == body

    # and back: binary from TCP to a WebSocket subscriber arrives as a binary WebSocket message
    ws.subscribe("/topic/cross-binary-back", "w1")
    pub = scope.stomp(name="tcp-pub")
    pub.send("/topic/cross-binary-back", body, content_type="application/octet-stream")
    (f,) = ws.wait_messages(1)
    assert f.body == body
    import websocket
    msg_ops = [op for op, data in ws.ws_messages if data.startswith(b"MESSAGE\n")]
    assert msg_ops == [websocket.ABNF.OPCODE_BINARY], msg_ops


def test_ws_user_destination_to_tcp(scope):
    alice = scope.stomp(name="alice", login="alice", passcode="pw")
    r = uid("sub")
    alice.subscribe("/user/queue/inbox", id="s1", receipt=r)
    alice.listener.wait_receipt(r)
    ws = scope.ws()
    ws.connect(login="bob", passcode="pw")
    rid = uid("send")
    ws.send("SEND", {"destination": "/user/alice/queue/inbox", "receipt": rid}, "hi alice")
    ws.wait_receipt(rid)
    (m,) = alice.listener.messages.count(1)
    assert m.body == "hi alice"
    assert m.headers["destination"] == "/user/queue/inbox"


def test_stomppy_ws_connection_to_tcp_and_back(scope):
    """stomp.py's own WebSocket client (stomp.WSConnection, no subprotocol offered)
    and its TCP client exchange messages both ways."""
    ws = scope.stomp("ws", name="stomppy-ws")
    (cf,) = ws.listener.connected.snapshot()
    assert cf.headers.get("version") == "1.2", cf.headers
    assert cf.headers.get("server", "").startswith("stompbus/"), cf.headers
    tcp = scope.stomp("1.2", name="stomppy-tcp")
    for c, sid in ((ws, "ws-sub"), (tcp, "tcp-sub")):
        r = uid("sub")
        c.subscribe("/topic/cross-stomppy", id=sid, receipt=r)
        c.listener.wait_receipt(r)
    r1 = uid("send")
    ws.send("/topic/cross-stomppy", "from ws", receipt=r1)
    ws.listener.wait_receipt(r1)
    r2 = uid("send")
    tcp.send("/topic/cross-stomppy", "from tcp", receipt=r2)
    tcp.listener.wait_receipt(r2)
    assert [m.body for m in tcp.listener.messages.count(2)] == ["from ws", "from tcp"]
    assert [m.body for m in ws.listener.messages.count(2)] == ["from ws", "from tcp"]


def test_ws_queue_consumer_gets_tcp_sends_with_client_individual_ack(scope):
    dest = "/queue/cross-ack"
    ws = scope.stomp("ws", name="ws-consumer")
    r = uid("sub")
    ws.subscribe(dest, id="s1", ack="client-individual", receipt=r)
    ws.listener.wait_receipt(r)
    tcp = scope.stomp("1.2", name="tcp-pub")
    for i in range(5):
        tcp.send(dest, f"job {i}")
    got = ws.listener.messages.count(5)
    assert [m.body for m in got] == [f"job {i}" for i in range(5)]
    for m in got:
        ra = uid("ack")
        ws.ack(m.headers["ack"], receipt=ra)
        ws.listener.wait_receipt(ra)
