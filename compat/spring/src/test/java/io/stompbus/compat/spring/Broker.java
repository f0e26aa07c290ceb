package io.stompbus.compat.spring;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One stompbus node run from the binary that test.sh built (system property
 * {@code stompbus.broker} or env {@code STOMPBUS_BROKER}). The first start
 * picks free ports ({@code 127.0.0.1:0}) and reads them from the
 * {@code msg=listening} log lines; a restart reuses them, so a relay
 * configured with the old port finds the new process.
 */
final class Broker implements AutoCloseable {
  private static final Pattern LISTENING =
      Pattern.compile("msg=listening transport=(http|stomp) addr=(\\S+)");
  private static final Duration START_TIMEOUT = Duration.ofSeconds(20);
  private static Broker shared;

  private final String node;
  private final List<String> extraArgs;
  private final Path dataDir;
  private final ArrayDeque<String> log = new ArrayDeque<>();
  private final Supplier<String> logSource = this::logTail;
  private Process proc;
  private String httpAddr;
  private String stompAddr;

  private Broker(String node, List<String> extraArgs) throws IOException {
    this.node = node;
    this.extraArgs = List.copyOf(extraArgs);
    this.dataDir = Files.createTempDirectory("stompbus-spring-" + node + "-");
  }

  /** Starts a node on free ports. */
  static Broker start(String node, String... extraArgs) throws IOException {
    Broker b = new Broker(node, List.of(extraArgs));
    b.start();
    return b;
  }

  /** A node shared by the test classes that do not stop it; ends with the JVM. */
  static synchronized Broker shared() throws IOException {
    if (shared == null) {
      shared = start("shared");
      Broker b = shared;
      Runtime.getRuntime().addShutdownHook(new Thread(b::close));
    }
    return shared;
  }

  static Path binary() {
    String p = System.getProperty("stompbus.broker");
    if (p == null || p.isBlank() || p.startsWith("${")) {
      p = System.getenv("STOMPBUS_BROKER");
    }
    if (p == null || p.isBlank() || !Files.isExecutable(Path.of(p))) {
      throw new IllegalStateException("no broker binary: run compat/spring/test.sh, or set -Dstompbus.broker=PATH "
          + "(go build -o PATH ./cmd/broker); got " + p);
    }
    return Path.of(p);
  }

  /**
   * Writes a users file (-users) with a bcrypt hash of each login's
   * password; JsAgent and JavaClient log in with "secret-" + login.
   */
  static Path usersFile(String... logins) throws IOException {
    org.springframework.security.crypto.bcrypt.BCryptPasswordEncoder enc =
        new org.springframework.security.crypto.bcrypt.BCryptPasswordEncoder(4);
    StringBuilder b = new StringBuilder("# written by the Spring compatibility tests\n");
    for (String l : logins) {
      b.append(l).append(':').append(enc.encode(l.startsWith("spring-") ? l.substring(7) + "-secret" : "secret-" + l))
          .append('\n');
    }
    Path p = Files.createTempFile("stompbus-users-", ".txt");
    Files.writeString(p, b.toString(), StandardCharsets.UTF_8);
    p.toFile().deleteOnExit();
    return p;
  }

  /** A TCP port that was free a moment ago. */
  static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      s.setReuseAddress(true);
      return s.getLocalPort();
    }
  }

  /** Whether the binary knows a flag (its -h output names it). */
  static boolean hasFlag(String flag) throws IOException, InterruptedException {
    Process p = new ProcessBuilder(binary().toString(), "-h").redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    p.waitFor(10, TimeUnit.SECONDS);
    return out.contains("-" + flag + " ") || out.contains("-" + flag + "\n") || out.contains("-" + flag + "\t");
  }

  synchronized void start() throws IOException {
    if (proc != null && proc.isAlive()) {
      throw new IllegalStateException(node + " is already running");
    }
    List<String> cmd = new ArrayList<>(List.of(binary().toString(),
        "-http", httpAddr != null ? httpAddr : "127.0.0.1:0",
        "-stomp", stompAddr != null ? stompAddr : "127.0.0.1:0",
        "-data", dataDir.toString(),
        "-node", node));
    cmd.addAll(extraArgs);
    appendLog("$ " + String.join(" ", cmd));
    Process p = new ProcessBuilder(cmd).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
    proc = p;
    String[] http = {null};
    String[] stomp = {null};
    Thread reader = new Thread(() -> readLog(p, http, stomp), "broker-log-" + node);
    reader.setDaemon(true);
    reader.start();
    long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
    synchronized (http) {
      while (http[0] == null || stomp[0] == null) {
        long left = deadline - System.nanoTime();
        if (left <= 0 || (!p.isAlive() && http[0] == null)) {
          p.destroyForcibly();
          throw new IllegalStateException("broker " + node + " did not report its listeners (exit="
              + (p.isAlive() ? "running" : p.exitValue()) + ")\n" + logTail());
        }
        try {
          http.wait(Math.min(200, Math.max(1, left / 1_000_000)));
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new IllegalStateException("interrupted", e);
        }
      }
      httpAddr = http[0];
      stompAddr = stomp[0];
    }
    FrameLog.addSource(logSource);
  }

  private void readLog(Process p, String[] http, String[] stomp) {
    try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getErrorStream(), StandardCharsets.UTF_8))) {
      String line;
      while ((line = r.readLine()) != null) {
        appendLog(line);
        Matcher m = LISTENING.matcher(line);
        if (m.find()) {
          synchronized (http) {
            if (m.group(1).equals("http")) {
              http[0] = m.group(2);
            } else {
              stomp[0] = m.group(2);
            }
            http.notifyAll();
          }
        }
      }
    } catch (IOException e) {
      appendLog("(log read ended: " + e + ")");
    }
  }

  private void appendLog(String line) {
    synchronized (log) {
      log.addLast(line);
      while (log.size() > 300) {
        log.removeFirst();
      }
    }
  }

  String logTail() {
    StringBuilder b = new StringBuilder("==== broker " + node + " log (last lines) ====\n");
    synchronized (log) {
      for (String l : log) {
        b.append(l).append('\n');
      }
    }
    return b.toString();
  }

  /** Stops the node with SIGTERM (it drains and exits) and waits for it. */
  synchronized void stop() {
    if (proc == null) {
      return;
    }
    proc.destroy();
    try {
      if (!proc.waitFor(15, TimeUnit.SECONDS)) {
        appendLog("(did not exit 15 s after SIGTERM; killed)");
        proc.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    appendLog("(exited " + (proc.isAlive() ? "?" : proc.exitValue()) + ")");
    proc = null;
  }

  /** Waits (bounded) until GET /readyz answers 200. */
  void awaitReady(Duration timeout) throws IOException, InterruptedException {
    HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();
    HttpRequest req = HttpRequest.newBuilder(URI.create("http://" + httpAddr + "/readyz"))
        .timeout(Duration.ofSeconds(2)).build();
    long deadline = System.nanoTime() + timeout.toNanos();
    int last = -1;
    while (System.nanoTime() < deadline) {
      try {
        last = http.send(req, HttpResponse.BodyHandlers.discarding()).statusCode();
        if (last == 200) {
          return;
        }
      } catch (IOException e) {
        last = -1;
      }
      Thread.sleep(100); // polling interval of a bounded readiness probe
    }
    throw new AssertionError("broker " + node + " not ready after " + timeout.toSeconds() + " s (last /readyz " + last
        + ")\n" + logTail());
  }

  String node() {
    return node;
  }

  int stompPort() {
    return Integer.parseInt(stompAddr.substring(stompAddr.lastIndexOf(':') + 1));
  }

  String wsUrl() {
    return "ws://" + httpAddr + "/ws";
  }

  @Override
  public synchronized void close() {
    stop();
    FrameLog.removeSource(logSource);
  }
}
