package io.stompbus.compat.spring;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.ExtendWith;
import org.springframework.context.ConfigurableApplicationContext;

/**
 * stompbus as the external broker behind Spring's
 * {@code enableStompBrokerRelay}: one app, one node (with a users file, so
 * the relay's credentials are checked; restarted by the last test),
 * stomp.js clients on the app and straight on the node.
 */
@ExtendWith(DumpOnFailure.class)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class RelayTest {
  private static Broker broker;
  private static TcpTap tap;
  private static ConfigurableApplicationContext app;
  private static RelayApp.Availability availability;
  private static JsAgent js;
  private static String appUrl;

  @BeforeAll
  static void start() throws Exception {
    // The node checks passwords: the relay's system and client logins, and
    // dave, who connects straight to it.
    broker = Broker.start("relay", "-users",
        Broker.usersFile("spring-system", "spring-client", "dave").toString());
    tap = new TcpTap("relay", "127.0.0.1", broker.stompPort());
    app = RelayApp.run("relay-app", "127.0.0.1", tap.port());
    availability = app.getBean(RelayApp.Availability.class);
    availability.events.first(Boolean.TRUE::equals, "the relay's system session to connect");
    appUrl = RelayApp.wsUrl(app);
    js = JsAgent.start();
  }

  @AfterAll
  static void stop() {
    if (js != null) {
      js.close();
    }
    if (app != null) {
      app.close();
    }
    if (tap != null) {
      tap.close();
    }
    if (broker != null) {
      broker.close();
    }
  }

  @Test
  @Order(1)
  void relayConnectsWithHostCredentialsAndHeartBeats() {
    TcpTap.Frame connect = tap.frames.first(f -> f.toBroker() && f.command().equals("CONNECT")
        && "spring-system".equals(f.header("login")), "the system session's CONNECT");
    assertThat(connect.header("passcode")).isEqualTo("system-secret");
    assertThat(connect.header("host")).isEqualTo("stompbus");
    assertThat(connect.header("accept-version")).isEqualTo("1.1,1.2");
    assertThat(connect.header("heart-beat")).isEqualTo("5000,5000");
    TcpTap.Frame connected = tap.frames.first(f -> !f.toBroker() && f.conn() == connect.conn()
        && f.command().equals("CONNECTED"), "CONNECTED for the system session");
    assertThat(connected.header("version")).isEqualTo("1.2");
    assertThat(connected.header("user-name")).isEqualTo("spring-system");
    // The system session subscribes to both broadcast destinations.
    assertThat(List.of("/topic/unresolved-user-destination", "/topic/simp-user-registry")).allSatisfy(d ->
        tap.frames.first(f -> f.conn() == connect.conn() && f.command().equals("SUBSCRIBE")
            && d.equals(f.header("destination")), "the system SUBSCRIBE to " + d));
    // Both sides beat (Spring then beats every max(5 s, 10 s); on the
    // system session the 2 s registry broadcasts usually leave no idle
    // period for a heart-beat, so those are checked on a client session).
    assertThat(connected.header("heart-beat")).matches("[1-9][0-9]*,[1-9][0-9]*");

    // A client session is relayed on a connection of its own, logged in
    // with the relay's client credentials whatever the client sent.
    int mark = tap.frames.size();
    js.connect("creds", appUrl, "carol");
    TcpTap.Frame client = tap.frames.first(mark, f -> f.toBroker() && f.command().equals("CONNECT"),
        Await.TIMEOUT, "the client session's CONNECT");
    assertThat(client.conn()).isNotEqualTo(connect.conn());
    assertThat(client.header("login")).isEqualTo("spring-client");
    assertThat(client.header("passcode")).isEqualTo("client-secret");
    assertThat(client.header("host")).isEqualTo("stompbus");
    // The client's heart-beats pass through the relay both ways: the
    // idle session sees the broker's "\n" on its relay connection, and
    // stomp.js's own reach the broker.
    Duration hb = Duration.ofSeconds(16);
    tap.frames.first(mark, f -> f.conn() == client.conn() && !f.toBroker() && f.heartBeat(), hb,
        "a heart-beat from the broker on the relayed client session");
    tap.frames.first(mark, f -> f.conn() == client.conn() && f.toBroker() && f.heartBeat(), hb,
        "a heart-beat from stomp.js through the relay");
    js.disconnect("creds");
  }

  @Test
  @Order(2)
  void relayWithAWrongSystemPasswordIsRefused() throws Exception {
    // A second app whose system passcode the node does not accept: the
    // node answers its CONNECT with an ERROR, so the relay never reports
    // the broker available, and it refuses its own clients.
    try (TcpTap badTap = new TcpTap("bad-relay", "127.0.0.1", broker.stompPort());
        ConfigurableApplicationContext bad = RelayApp.run("bad-relay-app", "127.0.0.1", badTap.port(),
            Map.of("stompbus.relay.system-passcode", "wrong"))) {
      TcpTap.Frame connect = badTap.frames.first(f -> f.toBroker() && f.command().equals("CONNECT"),
          "the bad relay's CONNECT");
      TcpTap.Frame error = badTap.frames.first(f -> !f.toBroker() && f.conn() == connect.conn(),
          "the node's answer to the bad CONNECT");
      assertThat(error.command()).isEqualTo("ERROR");
      assertThat(error.header("message")).isEqualTo("authentication failed");
      RelayApp.Availability a = bad.getBean(RelayApp.Availability.class);
      assertThat(a.events.snapshot()).doesNotContain(Boolean.TRUE);
      JsonNode refused = js.connectFails("refused", RelayApp.wsUrl(bad), "alice");
      assertThat(refused.path("ev").asText()).isEqualTo("stomp-error");
      FrameLog.add("test", "---", "the bad relay's client got " + refused);
    }
  }

  @Test
  @Order(3)
  void messagesFlowBothWaysBetweenAppClientsAndDirectClients() {
    exchange("a");
  }

  /** A client of the app and a client of the node exchange messages both ways. */
  private void exchange(String round) {
    String viaApp = "via-app-" + round;
    String direct = "direct-" + round;
    JsonNode appConnected = js.connect(viaApp, appUrl, "alice");
    assertThat(appConnected.path("version").asText()).isEqualTo("1.2");
    js.connect(direct, broker.wsUrl(), "dave");

    js.subscribe(viaApp, "chat", "/topic/relay.chat");
    js.subscribe(direct, "work", "/queue/relay.work");
    js.subscribe(direct, "shouts", "/topic/shouts");

    js.send(direct, "/topic/relay.chat", "direct to app " + round);
    JsonNode m = js.message(viaApp, "chat", "direct to app " + round);
    assertThat(m.path("headers").path("destination").asText()).isEqualTo("/topic/relay.chat");

    js.send(viaApp, "/queue/relay.work", "app to direct " + round);
    js.message(direct, "work", "app to direct " + round);

    // A binary body crosses the relay intact.
    byte[] bin = {0, 1, 2, (byte) 0xff, '\n', 0, 'x'};
    js.sendBinary(direct, "/topic/relay.chat", bin);
    String b64 = Base64.getEncoder().encodeToString(bin);
    JsonNode b = js.events.first(e -> e.path("ev").asText().equals("message") && e.path("id").asText().equals(viaApp)
        && e.path("base64").asText().equals(b64), "the binary message at " + viaApp);
    assertThat(b.path("headers").path("content-type").asText()).isEqualTo("application/octet-stream");

    // @SendTo: the app publishes on its system session.
    js.sendApp(viaApp, "/app/shout", "hello " + round);
    js.message(direct, "shouts", "alice shouts hello " + round);

    js.disconnect(viaApp);
    js.disconnect(direct);
  }

  @Test
  @Order(4)
  void clientAcknowledgementThroughTheRelay() {
    js.connect("worker-1", appUrl, "alice");
    js.connect("feeder", broker.wsUrl(), "dave");
    js.subscribe("worker-1", "jobs", "/queue/relay.jobs", Map.of("ack", "client-individual"));
    js.send("feeder", "/queue/relay.jobs", "job-1");
    js.send("feeder", "/queue/relay.jobs", "job-2");
    JsonNode j1 = js.message("worker-1", "jobs", "job-1");
    js.message("worker-1", "jobs", "job-2");
    assertThat(j1.path("headers").path("ack").asText()).isNotBlank();
    js.ack("worker-1", j1); // ACK (and its receipt) cross the relay
    js.disconnect("worker-1");

    // job-2 was not acknowledged: the next worker gets it, not job-1.
    js.connect("worker-2", appUrl, "alice");
    js.subscribe("worker-2", "jobs", "/queue/relay.jobs", Map.of("ack", "client"));
    js.ack("worker-2", js.message("worker-2", "jobs", "job-2"));
    js.send("feeder", "/queue/relay.jobs", "job-3");
    js.message("worker-2", "jobs", "job-3");
    assertThat(js.bodies("worker-2", "jobs")).containsExactly("job-2", "job-3");
    js.disconnect("worker-2");
    js.disconnect("feeder");
  }

  @Test
  @Order(5)
  void sendToUserRepliesReachTheRightSession() {
    for (String c : List.of("alice1", "alice2")) {
      js.connect(c, appUrl, "alice");
    }
    js.connect("bob", appUrl, "bob");
    int mark = tap.frames.size();
    for (String c : List.of("alice1", "alice2", "bob")) {
      js.subscribe(c, "echo", "/user/queue/echo");
      js.subscribe(c, "inbox", "/user/queue/inbox");
    }
    // Spring turns /user/queue/echo into one queue per session,
    // /queue/echo-user<session id>, and subscribes to that at the broker.
    List<TcpTap.Frame> subs = tap.frames.atLeast(6, f -> f.toBroker() && f.command().equals("SUBSCRIBE")
        && f.header("destination") != null && f.header("destination").matches("/queue/(echo|inbox)-user.+"),
        "SUBSCRIBEs to per-session queues");
    assertThat(subs.stream().filter(f -> tap.frames.snapshot().indexOf(f) >= mark)).hasSize(6);

    // broadcast=false: only the session that sent gets the reply.
    js.sendApp("alice1", "/app/echo", "ping-1");
    JsonNode r1 = js.message("alice1", "echo", "alice said ping-1");
    assertThat(r1.path("headers").path("destination").asText()).isEqualTo("/user/queue/echo");
    js.sendApp("alice2", "/app/echo", "ping-2");
    js.message("alice2", "echo", "alice said ping-2");
    // Replies go out in order on the one system session: had ping-1's
    // reply also gone to alice2, it would have arrived before ping-2's.
    assertThat(js.bodies("alice2", "echo")).containsExactly("alice said ping-2");
    assertThat(js.bodies("alice1", "echo")).containsExactly("alice said ping-1");

    // The default (broadcast): every session of the user, nobody else.
    js.sendApp("alice1", "/app/echo-all", "ping-3");
    js.message("alice1", "echo", "alice said to all ping-3");
    js.message("alice2", "echo", "alice said to all ping-3");

    // convertAndSendToUser from another user's message.
    js.sendApp("bob", "/app/dm/alice", "hi alice");
    js.message("alice1", "inbox", "bob: hi alice");
    js.message("alice2", "inbox", "bob: hi alice");
    js.sendApp("alice2", "/app/dm/bob", "hi bob");
    js.message("bob", "inbox", "alice: hi bob");
    assertThat(js.bodies("bob", "echo")).isEmpty();
    assertThat(js.bodies("bob", "inbox")).containsExactly("alice: hi bob");
    for (String c : List.of("alice1", "alice2", "bob")) {
      js.disconnect(c);
    }
  }

  @Test
  @Order(6)
  void relaySurvivesABrokerRestart() throws Exception {
    js.connect("before-restart", appUrl, "erin");
    int mark = availability.events.size();
    int jsMark = js.events.size();
    broker.stop();
    availability.events.first(mark, Boolean.FALSE::equals, Duration.ofSeconds(30),
        "BrokerAvailabilityEvent(false) after the node stopped");
    // The relay tells its clients that their broker connection is gone.
    js.awaitDropped(jsMark, "before-restart", Duration.ofSeconds(30));

    broker.start();
    availability.events.first(mark, Boolean.TRUE::equals, Duration.ofSeconds(30),
        "BrokerAvailabilityEvent(true) after the node came back");
    exchange("after-restart");
    // The user registry and @SendToUser work on the new system session too.
    js.connect("erin", appUrl, "erin");
    js.subscribe("erin", "echo", "/user/queue/echo");
    js.sendApp("erin", "/app/echo", "still there?");
    js.message("erin", "echo", "erin said still there?");
    js.disconnect("erin");
  }
}
