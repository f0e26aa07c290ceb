package io.stompbus.compat.spring;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A transparent TCP pipe between Spring's broker relay and a stompbus node's
 * STOMP port that records the frames going through ({@link FrameLog} and
 * {@link #frames}), so tests can check exactly what the relay sent
 * (CONNECT headers, translated destinations) and print the exchange when
 * they fail. Bytes pass unchanged, in both directions, as they arrive.
 * When either side closes, both are closed; when the node is down, a new
 * connection is closed at once, as a refused one would be.
 */
final class TcpTap implements AutoCloseable {
  /** One frame through the tap: toBroker says which way; conn numbers the connection. */
  record Frame(int conn, boolean toBroker, String text) {
    boolean heartBeat() {
      return text.equals("\n") || text.equals("\r\n");
    }

    String command() {
      int i = text.indexOf('\n');
      return i < 0 ? text : text.substring(0, i).trim();
    }

    /** The first value of header name, or null. */
    String header(String name) {
      for (String line : text.split("\n")) {
        if (line.isEmpty()) {
          break;
        }
        if (line.startsWith(name + ":")) {
          return line.substring(name.length() + 1).replace("\r", "");
        }
      }
      return null;
    }
  }

  final Await<Frame> frames;
  private final String name;
  private final String upstreamHost;
  private final int upstreamPort;
  private final ServerSocket server;
  private final List<Socket> sockets = new CopyOnWriteArrayList<>();
  private final AtomicInteger connections = new AtomicInteger();

  TcpTap(String name, String upstreamHost, int upstreamPort) throws IOException {
    this.name = name;
    this.frames = new Await<>(name + " relay frames");
    this.upstreamHost = upstreamHost;
    this.upstreamPort = upstreamPort;
    this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
    Thread t = new Thread(this::acceptLoop, "tap-" + name);
    t.setDaemon(true);
    t.start();
  }

  int port() {
    return server.getLocalPort();
  }

  private void acceptLoop() {
    while (!server.isClosed()) {
      Socket down;
      try {
        down = server.accept();
      } catch (IOException e) {
        return;
      }
      int n = connections.incrementAndGet();
      Socket up;
      try {
        up = new Socket(upstreamHost, upstreamPort);
      } catch (IOException e) {
        FrameLog.add(name + "#" + n, "---", "broker unreachable (" + e.getMessage() + "); closing the relay's connection");
        closeQuietly(down);
        continue;
      }
      sockets.add(down);
      sockets.add(up);
      FrameLog.add(name + "#" + n, "---", "relay connected");
      pump(n, down, up, true);
      pump(n, up, down, false);
    }
  }

  private void pump(int n, Socket from, Socket to, boolean toBroker) {
    Thread t = new Thread(() -> {
      ByteArrayOutputStream frame = new ByteArrayOutputStream();
      byte[] buf = new byte[16 * 1024];
      try (InputStream in = from.getInputStream()) {
        OutputStream out = to.getOutputStream();
        int r;
        while ((r = in.read(buf)) > 0) {
          out.write(buf, 0, r);
          out.flush();
          for (int i = 0; i < r; i++) {
            byte b = buf[i];
            if (b == 0 && bodyComplete(frame)) {
              record(n, toBroker, frame.toString(StandardCharsets.UTF_8));
              frame.reset();
            } else if (frame.size() == 0 && b == '\n') {
              record(n, toBroker, "\n"); // heart-beat between frames
            } else if (!(frame.size() == 0 && b == '\r')) {
              frame.write(b);
            }
          }
        }
      } catch (IOException e) {
        // one side went away; close both below
      } finally {
        FrameLog.add(name + "#" + n, "---", (toBroker ? "relay" : "broker") + " side closed");
        closeQuietly(from);
        closeQuietly(to);
      }
    }, "tap-" + name + "-" + n + (toBroker ? "-up" : "-down"));
    t.setDaemon(true);
    t.start();
  }

  /** Whether a NUL ends the frame, or is part of a body of known content-length. */
  private static boolean bodyComplete(ByteArrayOutputStream frame) {
    byte[] b = frame.toByteArray();
    int end = -1;
    for (int i = 0; i + 1 < b.length; i++) {
      if (b[i] == '\n' && (b[i + 1] == '\n' || (b[i + 1] == '\r' && i + 2 < b.length && b[i + 2] == '\n'))) {
        end = i + (b[i + 1] == '\n' ? 2 : 3);
        break;
      }
    }
    if (end < 0) {
      return true;
    }
    String cl = new Frame(0, false, new String(b, 0, end, StandardCharsets.UTF_8)).header("content-length");
    if (cl == null) {
      return true;
    }
    try {
      return b.length - end >= Integer.parseInt(cl.trim());
    } catch (NumberFormatException e) {
      return true;
    }
  }

  private void record(int n, boolean toBroker, String text) {
    Frame f = new Frame(n, toBroker, text);
    frames.add(f);
    FrameLog.add(name + "#" + n, toBroker ? "relay>>>broker" : "relay<<<broker", text);
  }

  private static void closeQuietly(Socket s) {
    try {
      s.close();
    } catch (IOException ignored) {
      // closing anyway
    }
  }

  @Override
  public void close() {
    closeQuietly2();
    sockets.forEach(TcpTap::closeQuietly);
  }

  private void closeQuietly2() {
    try {
      server.close();
    } catch (IOException ignored) {
      // closing anyway
    }
  }
}
