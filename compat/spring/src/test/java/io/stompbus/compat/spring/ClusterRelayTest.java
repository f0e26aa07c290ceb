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
import org.springframework.messaging.simp.user.SimpUser;
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
    // The route ports are picked free beforehand, and another listener may
    // take one before the node binds it: then start both nodes again.
    for (int attempt = 1; ; attempt++) {
      try {
        startNodes();
        break;
      } catch (IllegalStateException | AssertionError e) {
        System.out.println("cluster start, attempt " + attempt + ": " + e);
        closeNodes();
        if (attempt == 2) {
          throw e;
        }
      }
    }
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

  private static void startNodes() throws Exception {
    int routeA = Broker.freePort();
    int routeB = Broker.freePort();
    nodeA = Broker.start("spring-a", "-cluster-listen", "127.0.0.1:" + routeA,
        "-cluster-routes", "nats-route://127.0.0.1:" + routeB);
    nodeB = Broker.start("spring-b", "-cluster-listen", "127.0.0.1:" + routeB,
        "-cluster-routes", "nats-route://127.0.0.1:" + routeA);
    nodeA.awaitReady(Duration.ofSeconds(30));
    nodeB.awaitReady(Duration.ofSeconds(30));
  }

  private static void closeNodes() {
    for (Broker b : new Broker[] {nodeA, nodeB}) {
      if (b != null) {
        b.close();
      }
    }
    nodeA = null;
    nodeB = null;
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
    js.connect("ann@a", a, "ann");
    js.connect("ann@b", b, "ann");
    js.connect("ben@b", b, "ben");
    for (String c : List.of("ann@a", "ann@b", "ben@b")) {
      js.subscribe(c, "inbox", "/user/queue/inbox");
      js.subscribe(c, "echo", "/user/queue/echo");
    }

    // A user instance A has not heard of yet goes out on
    // /topic/unresolved-user-destination; instance B resolves it. Either
    // way, ben gets it.
    boolean knewBen = knows(appA, "ben");
    js.sendApp("ann@a", "/app/dm/ben", "first");
    js.message("ben@b", "inbox", "ann: first");
    String path = "first DM sent while instance A " + (knewBen ? "knew" : "did not know") + " ben";
    FrameLog.add("test", "---", path);
    System.out.println(path);

    // Once the registry broadcasts have crossed the cluster, A sends to
    // ben's session queue (/queue/inbox-user<session>) itself: the message
    // is published on node A and consumed on node B.
    // (A user with sessions on both instances is complete in an instance's
    // registry only once the other's snapshot arrived: wait for both. The
    // users are not those of the other test: a snapshot may still list
    // sessions that ended a moment ago, and Spring would send to those.)
    awaitSessions(appA, "ben", 1);
    awaitSessions(appA, "ann", 2);
    awaitSessions(appB, "ann", 2);
    int mark = tapA.frames.size();
    js.sendApp("ann@a", "/app/dm/ben", "second");
    js.message("ben@b", "inbox", "ann: second");
    TcpTap.Frame send = tapA.frames.first(mark, f -> f.toBroker() && f.command().equals("SEND")
        && f.text().endsWith("ann: second"), Await.TIMEOUT, "instance A's SEND of the second DM");
    assertThat(send.header("destination")).startsWith("/queue/inbox-user");

    // Broadcast @SendToUser from A reaches ann's sessions on both.
    js.sendApp("ann@a", "/app/echo-all", "everywhere");
    js.message("ann@a", "echo", "ann said to all everywhere");
    js.message("ann@b", "echo", "ann said to all everywhere");
    // And ben on B answers ann, who has sessions on both instances.
    js.sendApp("ben@b", "/app/dm/ann", "back");
    js.message("ann@a", "inbox", "ben: back");
    js.message("ann@b", "inbox", "ben: back");
    assertThat(js.bodies("ben@b", "inbox")).containsExactly("ann: first", "ann: second");
    for (String c : List.of("ann@a", "ann@b", "ben@b")) {
      js.disconnect(c);
    }
  }

  private static boolean knows(ConfigurableApplicationContext app, String user) {
    return app.getBean(SimpUserRegistry.class).getUser(user) != null;
  }

  private static int sessions(ConfigurableApplicationContext app, String user) {
    SimpUser u = app.getBean(SimpUserRegistry.class).getUser(user);
    return u == null ? 0 : u.getSessions().size();
  }

  /** Waits (bounded) until app's user registry lists n sessions of user. */
  private static void awaitSessions(ConfigurableApplicationContext app, String user, int n) {
    long deadline = System.nanoTime() + Duration.ofSeconds(15).toNanos();
    while (sessions(app, user) < n) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError(app.getId() + " lists " + sessions(app, user) + " sessions of " + user
            + ", not " + n + ", 15 s after the registry broadcasts began");
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
