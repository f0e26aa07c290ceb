package io.stompbus.compat.spring;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Drives stomp.js clients (@stomp/stompjs on the ws package) running in one
 * Node process, js/agent.mjs, over its stdin/stdout: commands out, events
 * in. Every frame the clients exchange goes to the {@link FrameLog}.
 */
final class JsAgent implements AutoCloseable {
  private static final ObjectMapper JSON = new ObjectMapper();

  /** Every event the agent reported, oldest first. */
  final Await<JsonNode> events = new Await<>("stomp.js agent events");
  private final Process proc;
  private final OutputStream in;
  private final AtomicLong receipts = new AtomicLong();
  private final StringBuilder stderr = new StringBuilder();

  private JsAgent(Process proc) {
    this.proc = proc;
    this.in = proc.getOutputStream();
    Thread out = new Thread(this::readEvents, "js-agent-out");
    out.setDaemon(true);
    out.start();
    Thread err = new Thread(this::readStderr, "js-agent-err");
    err.setDaemon(true);
    err.start();
  }

  static JsAgent start() throws IOException {
    String script = System.getProperty("stompbus.agent", "js/agent.mjs");
    if (!Files.isRegularFile(Path.of(script))) {
      throw new IllegalStateException("no stomp.js agent at " + script);
    }
    JsAgent a = new JsAgent(new ProcessBuilder("node", script).start());
    a.events.first(e -> e.path("ev").asText().equals("ready"), "the agent to start");
    return a;
  }

  private void readEvents() {
    try (BufferedReader r = new BufferedReader(new InputStreamReader(proc.getInputStream(), StandardCharsets.UTF_8))) {
      String line;
      while ((line = r.readLine()) != null) {
        JsonNode ev;
        try {
          ev = JSON.readTree(line);
        } catch (IOException e) {
          FrameLog.add("js-agent", "!!!", "unparsable: " + line);
          continue;
        }
        String kind = ev.path("ev").asText();
        String who = "js:" + ev.path("id").asText("agent");
        switch (kind) {
          case "frame" -> {
            String dir = ev.path("dir").asText();
            FrameLog.add(who, dir.equals("out") ? ">>>" : dir.equals("in") ? "<<<" : "!!!", ev.path("text").asText());
            continue; // frames are logged, not kept as events
          }
          case "closed" -> FrameLog.add(who, "---", "websocket closed " + ev.path("code").asInt() + " "
              + ev.path("reason").asText());
          case "fail" -> FrameLog.add(who, "!!!", "agent command failed: " + ev.path("error").asText());
          default -> {
          }
        }
        events.add(ev);
      }
    } catch (IOException e) {
      FrameLog.add("js-agent", "!!!", "event stream ended: " + e);
    }
  }

  private void readStderr() {
    try (BufferedReader r = new BufferedReader(new InputStreamReader(proc.getErrorStream(), StandardCharsets.UTF_8))) {
      String line;
      while ((line = r.readLine()) != null) {
        synchronized (stderr) {
          if (stderr.length() < 20_000) {
            stderr.append(line).append('\n');
          }
        }
        FrameLog.add("js-agent", "!!!", "stderr: " + line);
      }
    } catch (IOException ignored) {
      // the process ended
    }
  }

  private synchronized void command(ObjectNode cmd) {
    if (!proc.isAlive()) {
      throw new IllegalStateException("the stomp.js agent exited; stderr:\n" + stderr);
    }
    try {
      in.write((cmd.toString() + "\n").getBytes(StandardCharsets.UTF_8));
      in.flush();
    } catch (IOException e) {
      throw new IllegalStateException("writing to the stomp.js agent", e);
    }
  }

  private static ObjectNode cmd(String op, String id) {
    ObjectNode n = JSON.createObjectNode();
    n.put("op", op);
    n.put("id", id);
    return n;
  }

  private static boolean is(JsonNode e, String kind, String id) {
    return e.path("ev").asText().equals(kind) && e.path("id").asText().equals(id);
  }

  /** Connects client id to url with login (may be null); returns CONNECTED's headers. */
  JsonNode connect(String id, String url, String login) {
    int mark = events.size();
    ObjectNode c = cmd("connect", id);
    c.put("url", url);
    ObjectNode h = c.putObject("headers");
    if (login != null) {
      h.put("login", login);
      h.put("passcode", "secret-" + login);
    }
    command(c);
    JsonNode ev = events.first(mark, e -> (is(e, "connected", id) || is(e, "stomp-error", id) || is(e, "fail", id)),
        Await.TIMEOUT, id + " to connect to " + url);
    if (!is(ev, "connected", id)) {
      throw new AssertionError(id + " could not connect to " + url + ": " + ev);
    }
    return ev.path("headers");
  }

  /** Connects client id and expects to be refused; returns the ERROR (or close) event. */
  JsonNode connectFails(String id, String url, String login) {
    int mark = events.size();
    ObjectNode c = cmd("connect", id);
    c.put("url", url);
    ObjectNode h = c.putObject("headers");
    h.put("login", login);
    h.put("passcode", "secret-" + login);
    command(c);
    JsonNode ev = events.first(mark, e -> is(e, "connected", id) || is(e, "stomp-error", id) || is(e, "closed", id),
        Await.TIMEOUT, id + " to be refused by " + url);
    disconnect(id);
    if (is(ev, "connected", id)) {
      throw new AssertionError(id + " connected to " + url + " although it should have been refused: " + ev);
    }
    return ev;
  }

  /** Subscribes and waits for the RECEIPT. */
  void subscribe(String id, String sub, String destination) {
    subscribe(id, sub, destination, Map.of());
  }

  void subscribe(String id, String sub, String destination, Map<String, String> headers) {
    ObjectNode c = cmd("subscribe", id);
    c.put("sub", sub);
    c.put("destination", destination);
    ObjectNode h = c.putObject("headers");
    headers.forEach(h::put);
    withReceipt(c, "SUBSCRIBE " + destination);
  }

  /** Acknowledges a message (its 1.2 ack header) and waits for the RECEIPT. */
  void ack(String id, JsonNode message) {
    ObjectNode c = cmd("ack", id);
    c.put("ackId", message.path("headers").path("ack").asText());
    c.put("sub", message.path("headers").path("subscription").asText());
    c.putObject("headers");
    withReceipt(c, "ACK " + message.path("headers").path("message-id").asText());
  }

  /** Sends a text body and waits for the RECEIPT. */
  void send(String id, String destination, String body) {
    send(id, destination, body, Map.of());
  }

  void send(String id, String destination, String body, Map<String, String> headers) {
    ObjectNode c = cmd("send", id);
    c.put("destination", destination);
    c.put("body", body);
    ObjectNode h = c.putObject("headers");
    headers.forEach(h::put);
    withReceipt(c, "SEND " + destination);
  }

  /**
   * Sends to an application destination (/app/...) of a Spring app. No
   * receipt: Spring's relay forwards only broker destinations, so a
   * receipt on a SEND to /app/... is never answered.
   */
  void sendApp(String id, String destination, String body) {
    ObjectNode c = cmd("send", id);
    c.put("destination", destination);
    c.put("body", body);
    command(c);
  }

  /** Sends a binary body (content-type application/octet-stream) and waits for the RECEIPT. */
  void sendBinary(String id, String destination, byte[] body) {
    ObjectNode c = cmd("send", id);
    c.put("destination", destination);
    c.put("base64", java.util.Base64.getEncoder().encodeToString(body));
    c.putObject("headers").put("content-type", "application/octet-stream");
    withReceipt(c, "SEND " + destination);
  }

  private void withReceipt(ObjectNode c, String what) {
    String id = c.path("id").asText();
    String r = "r-" + receipts.incrementAndGet();
    ObjectNode h = c.has("headers") ? (ObjectNode) c.get("headers") : c.putObject("headers");
    h.put("receipt", r);
    int mark = events.size();
    command(c);
    JsonNode ev = events.first(mark, e -> (is(e, "receipt", id) && e.path("receipt").asText().equals(r))
        || is(e, "stomp-error", id) || is(e, "fail", id), Await.TIMEOUT, id + ": RECEIPT " + r + " for " + what);
    if (!is(ev, "receipt", id)) {
      throw new AssertionError(id + ": " + what + " failed: " + ev);
    }
  }

  /** Waits for a MESSAGE on client id, subscription sub, with this text body. */
  JsonNode message(String id, String sub, String body) {
    return message(0, id, sub, body);
  }

  JsonNode message(int from, String id, String sub, String body) {
    return events.first(from, e -> is(e, "message", id) && e.path("sub").asText().equals(sub)
        && body.equals(e.path("body").asText(null)), Await.TIMEOUT, id + "/" + sub + " to receive \"" + body + "\"");
  }

  /** Text bodies received so far by client id on subscription sub. */
  List<String> bodies(String id, String sub) {
    return events.matching(e -> is(e, "message", id) && e.path("sub").asText().equals(sub)).stream()
        .map(e -> e.path("body").asText()).toList();
  }

  /** Waits for client id's connection to end (an ERROR frame or the socket closing) after mark. */
  JsonNode awaitDropped(int mark, String id, Duration timeout) {
    return events.first(mark, e -> is(e, "stomp-error", id) || is(e, "closed", id), timeout,
        id + " to be disconnected");
  }

  void disconnect(String id) {
    command(cmd("disconnect", id));
  }

  @Override
  public void close() {
    try {
      command(cmd("exit", "agent"));
    } catch (IllegalStateException ignored) {
      // already gone
    }
    try {
      if (!proc.waitFor(5, TimeUnit.SECONDS)) {
        proc.destroyForcibly();
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      proc.destroyForcibly();
    }
  }
}
