package io.stompbus.compat.spring;

import java.time.LocalTime;
import java.util.ArrayDeque;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Supplier;

/**
 * The STOMP frames every client and relay connection of the test JVM sent
 * and received, newest last, bounded. {@link DumpOnFailure} clears it before
 * each test and prints it when a test fails, together with the logs of the
 * brokers that registered a source.
 */
final class FrameLog {
  private static final int MAX_LINES = 4000;
  private static final ArrayDeque<String> lines = new ArrayDeque<>();
  private static final List<Supplier<String>> sources = new CopyOnWriteArrayList<>();

  private FrameLog() {}

  /** Records one frame (or heart-beat) that {@code who} sent (dir "&gt;&gt;&gt;") or received ("&lt;&lt;&lt;"). */
  static void add(String who, String dir, String text) {
    String line = LocalTime.now() + " [" + who + "] " + dir + " " + show(text);
    synchronized (lines) {
      lines.addLast(line);
      while (lines.size() > MAX_LINES) {
        lines.removeFirst();
      }
    }
  }

  /** Adds something else worth printing on failure (a broker's log). */
  static void addSource(Supplier<String> s) {
    sources.add(s);
  }

  static void removeSource(Supplier<String> s) {
    sources.remove(s);
  }

  static void clear() {
    synchronized (lines) {
      lines.clear();
    }
  }

  static String dump() {
    StringBuilder b = new StringBuilder("==== STOMP frames exchanged (oldest first) ====\n");
    synchronized (lines) {
      for (String l : lines) {
        b.append(l).append('\n');
      }
    }
    for (Supplier<String> s : sources) {
      b.append(s.get()).append('\n');
    }
    return b.toString();
  }

  /** Shows a frame on one line: newlines as \n, NUL as ^@, heart-beats named. */
  static String show(String text) {
    if (text.equals("\n") || text.equals("\r\n")) {
      return "<heart-beat>";
    }
    StringBuilder b = new StringBuilder(text.length() + 16);
    for (int i = 0; i < text.length() && b.length() < 2000; i++) {
      char c = text.charAt(i);
      switch (c) {
        case '\n' -> b.append("\\n");
        case '\r' -> b.append("\\r");
        case 0 -> b.append("^@");
        default -> b.append(c < 32 ? String.format("\\x%02x", (int) c) : String.valueOf(c));
      }
    }
    if (b.length() >= 2000) {
      b.append("...");
    }
    return b.toString();
  }
}
