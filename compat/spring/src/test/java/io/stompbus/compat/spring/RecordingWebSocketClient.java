package io.stompbus.compat.spring;

import java.io.IOException;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CompletableFuture;
import org.springframework.lang.Nullable;
import org.springframework.web.socket.BinaryMessage;
import org.springframework.web.socket.TextMessage;
import org.springframework.web.socket.WebSocketHandler;
import org.springframework.web.socket.WebSocketHttpHeaders;
import org.springframework.web.socket.WebSocketMessage;
import org.springframework.web.socket.WebSocketSession;
import org.springframework.web.socket.client.WebSocketClient;
import org.springframework.web.socket.client.standard.StandardWebSocketClient;
import org.springframework.web.socket.handler.WebSocketHandlerDecorator;
import org.springframework.web.socket.handler.WebSocketSessionDecorator;
import org.springframework.web.util.UriComponentsBuilder;

/**
 * The standard JSR-356 client (StandardWebSocketClient on Tomcat's
 * WsWebSocketContainer) with every WebSocket message in and out recorded in
 * the {@link FrameLog} and in {@link #messages}, so tests can also check what
 * went over the wire (heart-beats, text versus binary frames), and with its
 * sends serialized (see afterConnectionEstablished).
 */
final class RecordingWebSocketClient implements WebSocketClient {
  /** One WebSocket message: out=true if the client sent it. */
  record Wire(boolean out, boolean binary, String text) {}

  final Await<Wire> messages;
  private final String name;
  private final StandardWebSocketClient delegate = new StandardWebSocketClient();
  private volatile WebSocketSession session;

  RecordingWebSocketClient(String name) {
    this.name = name;
    this.messages = new Await<>(name + " websocket messages");
  }

  /** The session of the last handshake (accepted subprotocol and so on). */
  WebSocketSession session() {
    return session;
  }

  @Override
  public CompletableFuture<WebSocketSession> execute(WebSocketHandler handler, String uriTemplate, Object... vars) {
    URI uri = UriComponentsBuilder.fromUriString(uriTemplate).buildAndExpand(vars).encode().toUri();
    return execute(handler, null, uri);
  }

  @Override
  public CompletableFuture<WebSocketSession> execute(WebSocketHandler handler, @Nullable WebSocketHttpHeaders headers,
      URI uri) {
    return delegate.execute(new Recorder(handler), headers, uri);
  }

  private void record(boolean out, WebSocketMessage<?> m) {
    boolean binary = m instanceof BinaryMessage;
    String text;
    if (m instanceof TextMessage t) {
      text = t.getPayload();
    } else if (m instanceof BinaryMessage b) {
      ByteBuffer buf = b.getPayload().duplicate();
      byte[] bytes = new byte[buf.remaining()];
      buf.get(bytes);
      text = new String(bytes, StandardCharsets.UTF_8);
    } else {
      text = m.getClass().getSimpleName();
    }
    messages.add(new Wire(out, binary, text));
    FrameLog.add(name, (out ? ">>>" : "<<<") + (binary ? " [binary]" : ""), text);
  }

  private final class Recorder extends WebSocketHandlerDecorator {
    Recorder(WebSocketHandler delegate) {
      super(delegate);
    }

    @Override
    public void afterConnectionEstablished(WebSocketSession s) throws Exception {
      session = s;
      FrameLog.add(name, "---", "websocket open, subprotocol=" + s.getAcceptedProtocol());
      // Sends are serialized: WebSocketStompClient writes heart-beats from
      // its TaskScheduler thread and frames from the caller's, with no lock
      // between them, and Tomcat's JSR-356 client fails a send that overlaps
      // another ("The remote endpoint was in state [TEXT_PARTIAL_WRITING]").
      super.afterConnectionEstablished(new WebSocketSessionDecorator(s) {
        @Override
        public void sendMessage(WebSocketMessage<?> message) throws IOException {
          synchronized (this) {
            record(true, message);
            super.sendMessage(message);
          }
        }
      });
    }

    @Override
    public void handleMessage(WebSocketSession s, WebSocketMessage<?> message) throws Exception {
      record(false, message);
      super.handleMessage(s, message);
    }

    @Override
    public void afterConnectionClosed(WebSocketSession s, org.springframework.web.socket.CloseStatus status)
        throws Exception {
      FrameLog.add(name, "---", "websocket closed " + status);
      super.afterConnectionClosed(s, status);
    }
  }
}
