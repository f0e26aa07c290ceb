package io.stompbus.compat.spring;

import java.lang.reflect.Type;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.springframework.messaging.MessageHeaders;
import org.springframework.messaging.converter.ByteArrayMessageConverter;
import org.springframework.messaging.converter.CompositeMessageConverter;
import org.springframework.messaging.converter.StringMessageConverter;
import org.springframework.messaging.simp.stomp.StompCommand;
import org.springframework.messaging.simp.stomp.StompFrameHandler;
import org.springframework.messaging.simp.stomp.StompHeaders;
import org.springframework.messaging.simp.stomp.StompSession;
import org.springframework.messaging.simp.stomp.StompSessionHandlerAdapter;
import org.springframework.scheduling.TaskScheduler;
import org.springframework.web.socket.WebSocketHttpHeaders;
import org.springframework.web.socket.messaging.WebSocketStompClient;

/**
 * A Spring {@link WebSocketStompClient} session on the standard JSR-356
 * client, with heart-beats on (a TaskScheduler is set) and auto receipts,
 * whose received frames and session events tests wait for.
 */
final class JavaClient implements AutoCloseable {
  /** A MESSAGE (or ERROR) frame the session handed to a handler. */
  record Frame(String sub, StompHeaders headers, byte[] payload) {
    String text() {
      return new String(payload, StandardCharsets.UTF_8);
    }
  }

  final String name;
  final RecordingWebSocketClient ws;
  final WebSocketStompClient stomp;
  final Await<Frame> frames;
  final Await<Frame> errors;
  final Await<String> events;
  StompSession session;
  volatile StompHeaders connected;

  JavaClient(String name, TaskScheduler scheduler) {
    this.name = name;
    this.ws = new RecordingWebSocketClient(name);
    this.stomp = new WebSocketStompClient(ws);
    this.stomp.setTaskScheduler(scheduler);
    this.stomp.setDefaultHeartbeat(new long[] {10_000, 10_000});
    // Strings go out as given; every body comes in as bytes, whatever its
    // content-type (ByteArrayMessageConverter alone takes octet-stream only).
    this.stomp.setMessageConverter(new CompositeMessageConverter(List.of(new StringMessageConverter(),
        new ByteArrayMessageConverter() {
          @Override
          protected boolean supportsMimeType(MessageHeaders headers) {
            return true;
          }
        })));
    this.frames = new Await<>(name + " frames");
    this.errors = new Await<>(name + " ERROR frames");
    this.events = new Await<>(name + " session events");
  }

  /** Connects (subprotocols may be empty: then the handshake offers none). */
  JavaClient connect(String url, List<String> subprotocols, String login) throws Exception {
    WebSocketHttpHeaders hs = new WebSocketHttpHeaders();
    if (!subprotocols.isEmpty()) {
      hs.setSecWebSocketProtocol(subprotocols);
    }
    StompHeaders ch = new StompHeaders();
    if (login != null) {
      ch.setLogin(login);
      ch.setPasscode("secret-" + login);
    }
    CompletableFuture<StompSession> f = stomp.connectAsync(URI.create(url), hs, ch, new StompSessionHandlerAdapter() {
      @Override
      public void afterConnected(StompSession s, StompHeaders headers) {
        connected = headers;
        events.add("connected");
      }

      @Override
      public Type getPayloadType(StompHeaders headers) {
        return byte[].class;
      }

      @Override
      public void handleFrame(StompHeaders headers, Object payload) {
        errors.add(new Frame(null, headers, (byte[]) payload));
      }

      @Override
      public void handleException(StompSession s, StompCommand command, StompHeaders headers, byte[] payload,
          Throwable ex) {
        events.add("exception: " + ex);
      }

      @Override
      public void handleTransportError(StompSession s, Throwable ex) {
        events.add("transport error: " + ex);
      }
    });
    session = f.get(Await.TIMEOUT.toSeconds(), TimeUnit.SECONDS);
    // The future completes just before the handler's afterConnected runs.
    events.first(e -> e.equals("connected"), "afterConnected");
    session.setAutoReceipt(true);
    return this;
  }

  /** Subscribes and waits for the broker's RECEIPT. */
  StompSession.Subscription subscribe(String sub, String destination, String ack) {
    return subscribe(sub, destination, ack, java.util.Map.of());
  }

  /** Subscribes with extra headers and waits for the broker's RECEIPT. */
  StompSession.Subscription subscribe(String sub, String destination, String ack, java.util.Map<String, String> extra) {
    StompHeaders h = new StompHeaders();
    extra.forEach(h::set);
    h.setDestination(destination);
    h.setId(sub);
    if (ack != null) {
      h.setAck(ack);
    }
    StompSession.Subscription s = session.subscribe(h, new StompFrameHandler() {
      @Override
      public Type getPayloadType(StompHeaders headers) {
        return byte[].class;
      }

      @Override
      public void handleFrame(StompHeaders headers, Object payload) {
        frames.add(new Frame(sub, headers, (byte[]) payload));
      }
    });
    awaitReceipt(s, "SUBSCRIBE " + destination);
    return s;
  }

  /** Sends and waits for the broker's RECEIPT. */
  void send(String destination, String contentType, Object payload) {
    StompHeaders h = new StompHeaders();
    h.setDestination(destination);
    h.set("content-type", contentType);
    awaitReceipt(session.send(h, payload), "SEND " + destination);
  }

  void awaitReceipt(StompSession.Receiptable r, String what) {
    if (r.getReceiptId() == null) {
      throw new AssertionError(name + ": " + what + " carried no receipt header although auto-receipt is on");
    }
    CompletableFuture<Void> done = new CompletableFuture<>();
    r.addReceiptTask(() -> done.complete(null));
    r.addReceiptLostTask(() -> done.completeExceptionally(
        new AssertionError(name + ": no RECEIPT " + r.getReceiptId() + " for " + what)));
    try {
      done.get(Await.TIMEOUT.toSeconds(), TimeUnit.SECONDS);
    } catch (Exception e) {
      throw new AssertionError(name + ": waiting for RECEIPT " + r.getReceiptId() + " for " + what + ": " + e, e);
    }
  }

  @Override
  public void close() {
    if (session != null && session.isConnected()) {
      session.disconnect();
    }
  }
}
