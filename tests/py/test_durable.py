"""Durable topic subscriptions with stomp.py, exactly as a RabbitMQ user
writes them: SUBSCRIBE with id, durable:true (or persistent:true) and
auto-delete:false; UNSUBSCRIBE with durable:true deletes."""
from conftest import bounded_disconnect, uid

DURABLE = {"durable": "true", "auto-delete": "false"}


def send_sync(conn, dest, body):
    r = uid("send")
    conn.send(dest, body, receipt=r)
    conn.listener.wait_receipt(r)


def durable_sync(conn, dest, sub_id, ack="auto", **headers):
    """Subscribes durably and waits for the RECEIPT, which the broker sends
    once the durable subscription exists."""
    r = uid("sub")
    conn.subscribe(dest, id=sub_id, ack=ack, receipt=r, headers={**DURABLE, **headers})
    conn.listener.wait_receipt(r)


def leave(conn):
    assert bounded_disconnect(conn, uid("bye")), "DISCONNECT got no RECEIPT"


def test_kept_while_away_then_live(scope):
    dest, sub_id = f"/topic/{uid('py-news')}", uid("d")
    pub = scope.stomp(name="pub", login="pub")
    alice = scope.stomp(name="alice", login="alice")
    durable_sync(alice, dest, sub_id)
    leave(alice)
    missed = [f"m{i}" for i in range(50)]
    for b in missed:
        send_sync(pub, dest, b)
    back = scope.stomp(name="alice again", login="alice")
    durable_sync(back, dest, sub_id)
    send_sync(pub, dest, "live")
    got = back.listener.messages.count(51)
    assert [m.body for m in got] == missed + ["live"]
    assert all(m.headers["subscription"] == sub_id for m in got)


def test_persistent_spelling_and_client_individual(scope):
    dest, sub_id = f"/topic/{uid('py-orders')}", uid("d")
    pub = scope.stomp(name="pub", login="pub")
    alice = scope.stomp(name="alice", login="alice")
    r = uid("sub")
    alice.subscribe(dest, id=sub_id, ack="client-individual", receipt=r,
                    headers={"persistent": "true", "auto-delete": "false"})
    alice.listener.wait_receipt(r)
    for b in ("a", "b", "c"):
        send_sync(pub, dest, b)
    got = alice.listener.messages.count(3)
    ra = uid("ack")
    alice.ack(got[0].headers["ack"], receipt=ra)  # only "a"
    alice.listener.wait_receipt(ra)
    leave(alice)
    back = scope.stomp(name="alice again", login="alice")
    durable_sync(back, dest, sub_id, ack="client-individual")
    again = back.listener.messages.count(2)
    assert [m.body for m in again] == ["b", "c"]
    assert all(m.headers.get("redelivered") == "true" for m in again), [m.headers for m in again]


def test_other_user_never_attaches(scope):
    dest, sub_id = f"/topic/{uid('py-private')}", uid("d")
    pub = scope.stomp(name="pub", login="pub")
    alice = scope.stomp(name="alice", login="alice")
    durable_sync(alice, dest, sub_id)
    leave(alice)
    send_sync(pub, dest, "for alice")
    mallory = scope.stomp(name="mallory", login="mallory")
    durable_sync(mallory, dest, sub_id)
    send_sync(pub, dest, "after")
    (m,) = mallory.listener.messages.count(1)
    assert m.body == "after"
    back = scope.stomp(name="alice again", login="alice")
    durable_sync(back, dest, sub_id)
    assert [m.body for m in back.listener.messages.count(2)] == ["for alice", "after"]


def test_unsubscribe_durable_deletes(scope):
    dest, sub_id = f"/topic/{uid('py-gone')}", uid("d")
    pub = scope.stomp(name="pub", login="pub")
    alice = scope.stomp(name="alice", login="alice")
    durable_sync(alice, dest, sub_id)
    r = uid("unsub")
    alice.unsubscribe(sub_id, receipt=r, headers={"durable": "true"})
    alice.listener.wait_receipt(r)
    send_sync(pub, dest, "nobody keeps this")
    durable_sync(alice, dest, sub_id)
    send_sync(pub, dest, "fresh")
    (m,) = alice.listener.messages.count(1)
    assert m.body == "fresh"


def test_durable_without_login_is_an_error(scope):
    anon = scope.stomp(name="anonymous")
    anon.subscribe(f"/topic/{uid('py-x')}", id="1", headers=DURABLE)
    (e,) = anon.listener.errors.count(1)
    assert e.headers.get("message") == "invalid durable subscription", e.headers
    assert "CONNECT with a login" in e.body, e.body


def test_auto_delete_true_is_an_error(scope):
    alice = scope.stomp(name="alice", login="alice")
    alice.subscribe(f"/topic/{uid('py-x')}", id="1", headers={"durable": "true", "auto-delete": "true"})
    (e,) = alice.listener.errors.count(1)
    assert "auto-delete:true contradicts durable:true" in e.body, e.body
