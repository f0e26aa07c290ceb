package io.stompbus.compat.spring;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * Clears the frame log before each test; when a test fails, prints the frames
 * exchanged (and the brokers' logs) and writes them to
 * target/frames/Class.method.txt, which test.sh prints.
 */
final class DumpOnFailure implements BeforeEachCallback, TestWatcher {
  @Override
  public void beforeEach(ExtensionContext context) {
    FrameLog.clear();
  }

  @Override
  public void testFailed(ExtensionContext context, Throwable cause) {
    String name = context.getRequiredTestClass().getSimpleName() + "." + context.getRequiredTestMethod().getName();
    String dump = "FAILED " + name + ": " + cause + "\n" + FrameLog.dump();
    System.out.println(dump);
    try {
      Path dir = Path.of("target", "frames");
      Files.createDirectories(dir);
      Files.writeString(dir.resolve(name + ".txt"), dump, StandardCharsets.UTF_8);
    } catch (IOException e) {
      System.out.println("could not write the frame dump: " + e);
    }
  }
}
