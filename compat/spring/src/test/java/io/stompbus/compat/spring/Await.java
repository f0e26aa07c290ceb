package io.stompbus.compat.spring;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;

/**
 * A thread-safe list of things that happened (frames received, events), with
 * bounded waits for one that matches. Items are never consumed: tests match
 * on values unique to them.
 */
final class Await<T> {
  static final Duration TIMEOUT = Duration.ofSeconds(15);

  private final String name;
  private final List<T> items = new ArrayList<>();

  Await(String name) {
    this.name = name;
  }

  synchronized void add(T item) {
    items.add(item);
    notifyAll();
  }

  synchronized List<T> snapshot() {
    return List.copyOf(items);
  }

  /** Waits (at most TIMEOUT) for an item matching p and returns the first. */
  T first(Predicate<? super T> p, String what) {
    return first(p, TIMEOUT, what);
  }

  synchronized T first(Predicate<? super T> p, Duration timeout, String what) {
    return first(0, p, timeout, what);
  }

  /** The number of items so far: a mark for {@link #first(int, Predicate, Duration, String)}. */
  synchronized int size() {
    return items.size();
  }

  /** Waits for an item matching p among those added at or after index from. */
  synchronized T first(int from, Predicate<? super T> p, Duration timeout, String what) {
    long deadline = System.nanoTime() + timeout.toNanos();
    int seen = 0;
    while (true) {
      for (int i = from; i < items.size(); i++) {
        if (p.test(items.get(i))) {
          return items.get(i);
        }
      }
      seen = items.size();
      long left = deadline - System.nanoTime();
      if (left <= 0) {
        throw new AssertionError(name + ": timed out after " + timeout.toMillis() + " ms waiting for " + what
            + " (have " + seen + " items: " + tail(items, 10) + ")");
      }
      try {
        wait(Math.max(1, left / 1_000_000));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new AssertionError(name + ": interrupted waiting for " + what, e);
      }
    }
  }

  /** Waits until at least n items match p; returns those that match. */
  synchronized List<T> atLeast(int n, Predicate<? super T> p, String what) {
    first(x -> count(p) >= n, TIMEOUT, n + " x " + what);
    return items.stream().filter(p).map(x -> (T) x).toList();
  }

  private int count(Predicate<? super T> p) {
    int n = 0;
    for (T t : items) {
      if (p.test(t)) {
        n++;
      }
    }
    return n;
  }

  synchronized List<T> matching(Predicate<? super T> p) {
    return items.stream().filter(p).map(x -> (T) x).toList();
  }

  private static String tail(List<?> l, int n) {
    return l.subList(Math.max(0, l.size() - n), l.size()).toString();
  }
}
