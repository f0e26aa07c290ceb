package io.stompbus.compat.spring;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.messaging.simp.user.SimpUserRegistry;

/**
 * Two stompbus nodes of one embedded cluster (-cluster-listen,
 * -cluster-routes), and two instances of the relay app, one per node: what
 * a client of one instance publishes reaches clients of the other, and
 * user destinations resolve across instances (through the user registry
 * broadcast and the unresolved-user broadcast, both carried by the
 * cluster).
 */
@ExtendWith(DumpOnFailure.class)
class ClusterRelayTest {
  private static Broker nodeA;
  private static Broker nodeB;
  private static TcpTap tapA;
  private static TcpTap tapB;
  private static ConfigurableApplicationContext appA;
  private static ConfigurableApplicationContext appB;
  private static JsAgent js;
  /** Why the cluster cannot be tested, or null: each test then aborts (reported as skipped). */
  private static String blocked;

  @BeforeAll
  static void start() throws Exception {
    if (!Broker.hasFlag("cluster-listen") || !Broker.hasFlag("cluster-routes")) {
      blocked = "blocked on the cluster: the broker has no -cluster-listen/-cluster-routes flags";
      return;
    }
    int routeA = Broker.freePort();
    int routeB = Broker.freePort();
    nodeA = Broker.start("spring-a", "-cluster-listen", "127.0.0.1:" + routeA,
        "-cluster-routes", "nats-route://127.0.0.1:" + routeB);
    nodeB = Broker.start("spring-b", "-cluster-listen", "127.0.0.1:" + routeB,
        "-cluster-routes", "nats-route://127.0.0.1:" + routeA);
    nodeA.awaitReady(Duration.ofSeconds(30));
    nodeB.awaitReady(Duration.ofSeconds(30));
    js = JsAgent.start();

    // Is the cluster there at all? A topic message from a client of node A
    // to a client of node B, straight, without Spring.
    js.connect("probe-a", nodeA.wsUrl(), "probe");
    js.connect("probe-b", nodeB.wsUrl(), "probe");
    js.subscribe("probe-b", "p", "/topic/cluster.probe");
    js.send("probe-a", "/topic/cluster.probe", "probe");
    boolean crossed;
    try {
      js.message("probe-b", "p", "probe");
      crossed = true;
    } catch (AssertionError e) {
      crossed = false;
    }
    js.disconnect("probe-a");
    js.disconnect("probe-b");
    if (!crossed) {
      blocked = "blocked on the cluster: nodes started with -cluster-listen/-cluster-routes do not form a "
          + "cluster (a /topic message published on node A did not reach a subscriber on node B within "
          + Await.TIMEOUT.toSeconds() + " s)";
      return;
    }

    tapA = new TcpTap("relay-a", "127.0.0.1", nodeA.stompPort());
    tapB = new TcpTap("relay-b", "127.0.0.1", nodeB.stompPort());
    appA = RelayApp.run("relay-app-a", "127.0.0.1", tapA.port());
    appB = RelayApp.run("relay-app-b", "127.0.0.1", tapB.port());
    for (ConfigurableApplicationContext app : List.of(appA, appB)) {
      app.getBean(RelayApp.Availability.class).events.first(Boolean.TRUE::equals,
          "the relay's system session to connect");
    }
  }

  @AfterAll
  static void stop() {
    for (AutoCloseable c : new AutoCloseable[] {js, appA, appB, tapA, tapB, nodeA, nodeB}) {
      if (c != null) {
        try {
          c.close();
        } catch (Exception e) {
          System.out.println("closing " + c + ": " + e);
        }
      }
    }
  }

  private static void requireCluster() {
    if (blocked != null) {
      System.out.println("SKIPPED: " + blocked);
      Assumptions.abort(blocked);
    }
  }

  @Test
  void topicsCrossAppInstances() {
    requireCluster();
    js.connect("alice@a", RelayApp.wsUrl(appA), "alice");
    js.connect("carol@b", RelayApp.wsUrl(appB), "carol");
    js.subscribe("alice@a", "chat", "/topic/cluster.chat");
    js.subscribe("carol@b", "shouts", "/topic/shouts");

    js.send("carol@b", "/topic/cluster.chat", "from b");
    js.message("alice@a", "chat", "from b");
    // @SendTo on instance A: its system session publishes on node A.
    js.sendApp("alice@a", "/app/shout", "from a");
    js.message("carol@b", "shouts", "alice shouts from a");
    js.disconnect("alice@a");
    js.disconnect("carol@b");
  }

  @Test
  void userDestinationsResolveAcrossAppInstances() {
    requireCluster();
    String a = RelayApp.wsUrl(appA);
    String b = RelayApp.wsUrl(appB);
    js.connect("alice@a", a, "alice");
    js.connect("alice@b", b, "alice");
    js.connect("bob@b", b, "bob");
    for (String c : List.of("alice@a", "alice@b", "bob@b")) {
      js.subscribe(c, "inbox", "/user/queue/inbox");
      js.subscribe(c, "echo", "/user/queue/echo");
    }

    // A user instance A has not heard of yet goes out on
    // /topic/unresolved-user-destination; instance B resolves it. Either
    // way, bob gets it.
    boolean knewBob = knows(appA, "bob");
    js.sendApp("alice@a", "/app/dm/bob", "first");
    js.message("bob@b", "inbox", "alice: first");
    String path = "first DM sent while instance A " + (knewBob ? "knew" : "did not know") + " bob";
    FrameLog.add("test", "---", path);
    System.out.println(path);

    // Once the registry broadcasts have crossed the cluster, A sends to
    // bob's session queue (/queue/inbox-user<session>) itself: the message
    // is published on node A and consumed on node B.
    awaitKnows(appA, "bob");
    awaitKnows(appB, "alice");
    int mark = tapA.frames.size();
    js.sendApp("alice@a", "/app/dm/bob", "second");
    js.message("bob@b", "inbox", "alice: second");
    TcpTap.Frame send = tapA.frames.first(mark, f -> f.toBroker() && f.command().equals("SEND")
        && f.text().endsWith("alice: second"), Await.TIMEOUT, "instance A's SEND of the second DM");
    assertThat(send.header("destination")).startsWith("/queue/inbox-user");

    // Broadcast @SendToUser from A reaches alice's sessions on both.
    js.sendApp("alice@a", "/app/echo-all", "everywhere");
    js.message("alice@a", "echo", "alice said to all everywhere");
    js.message("alice@b", "echo", "alice said to all everywhere");
    // And bob on B answers alice, who has sessions on both instances.
    js.sendApp("bob@b", "/app/dm/alice", "back");
    js.message("alice@a", "inbox", "bob: back");
    js.message("alice@b", "inbox", "bob: back");
    assertThat(js.bodies("bob@b", "inbox")).containsExactly("alice: first", "alice: second");
    for (String c : List.of("alice@a", "alice@b", "bob@b")) {
      js.disconnect(c);
    }
  }

  private static boolean knows(ConfigurableApplicationContext app, String user) {
    return app.getBean(SimpUserRegistry.class).getUser(user) != null;
  }

  private static void awaitKnows(ConfigurableApplicationContext app, String user) {
    long deadline = System.nanoTime() + Duration.ofSeconds(15).toNanos();
    while (!knows(app, user)) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError(app.getId() + " never learned of user " + user + " from the registry broadcast");
      }
      try {
        Thread.sleep(50); // polling interval of a bounded wait on Spring's registry
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new AssertionError("interrupted", e);
      }
    }
  }
}
