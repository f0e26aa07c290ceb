package io.stompbus.compat.spring;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.springframework.messaging.simp.stomp.StompHeaders;
import org.springframework.messaging.simp.stomp.StompSession;
import org.springframework.scheduling.concurrent.ThreadPoolTaskScheduler;

/**
 * Spring's WebSocketStompClient (standard JSR-356 client, heart-beats on,
 * auto receipts) against stompbus's /ws endpoint.
 */
@ExtendWith(DumpOnFailure.class)
class WebSocketStompClientTest {
  private static final List<String> STOMP_PROTOCOLS = List.of("v12.stomp", "v11.stomp", "v10.stomp");
  private static Broker broker;
  private static ThreadPoolTaskScheduler scheduler;
  private final List<JavaClient> clients = new ArrayList<>();

  @BeforeAll
  static void start() throws Exception {
    broker = Broker.shared();
    scheduler = new ThreadPoolTaskScheduler();
    scheduler.setPoolSize(2);
    scheduler.setThreadNamePrefix("stomp-hb-");
    scheduler.initialize();
  }

  @AfterAll
  static void stop() {
    scheduler.shutdown();
  }

  @AfterEach
  void closeClients() {
    clients.forEach(JavaClient::close);
  }

  private JavaClient client(String name, List<String> protocols, String login) throws Exception {
    JavaClient c = new JavaClient(name, scheduler);
    clients.add(c);
    return c.connect(broker.wsUrl(), protocols, login);
  }

  @Test
  void connectsWithAndWithoutSubprotocol() throws Exception {
    JavaClient with = client("with-subprotocol", STOMP_PROTOCOLS, null);
    assertThat(with.ws.session().getAcceptedProtocol()).isEqualTo("v12.stomp");
    JavaClient without = client("without-subprotocol", List.of(), null);
    assertThat(without.ws.session().getAcceptedProtocol()).isNullOrEmpty();

    for (JavaClient c : List.of(with, without)) {
      StompHeaders h = c.connected;
      assertThat(h.getFirst("version")).as(c.name + " version").isEqualTo("1.2");
      assertThat(h.getFirst("server")).as(c.name + " server").startsWith("stompbus/");
      assertThat(h.getFirst("session")).as(c.name + " session").isNotBlank();
      // Spring asked for 10 s both ways; the broker answers with its own
      // periods, which the client then takes the larger of.
      assertThat(h.getHeartbeat()).as(c.name + " heart-beat").hasSize(2).doesNotContain(0L);
      assertThat(c.session.isConnected()).isTrue();
    }
    // Both sessions work: a topic message from one reaches the other.
    without.subscribe("s1", "/topic/spring.handshake", null);
    with.send("/topic/spring.handshake", "text/plain", "hello over v12.stomp");
    assertThat(without.frames.first(f -> f.text().equals("hello over v12.stomp"), "the message").headers()
        .getDestination()).isEqualTo("/topic/spring.handshake");
  }

  @Test
  void heartBeatsFlowBothWays() throws Exception {
    JavaClient c = client("heart-beats", STOMP_PROTOCOLS, null);
    long[] hb = c.connected.getHeartbeat();
    // With a TaskScheduler set, Spring's client sends "\n" every
    // max(its 10 s, the broker's asked-for period) and expects the same back.
    long period = Math.max(Math.max(hb[0], hb[1]), 10_000);
    Duration wait = Duration.ofMillis(period + 5_000);
    c.ws.messages.first(w -> !w.out() && w.text().equals("\n"), wait, "a heart-beat from the broker");
    c.ws.messages.first(w -> w.out() && w.text().equals("\n"), wait, "a heart-beat from the client");
    assertThat(c.session.isConnected()).isTrue();
    assertThat(c.events.snapshot()).containsExactly("connected");
  }

  @Test
  void topicTextAndBinaryBodies() throws Exception {
    JavaClient sub = client("topic-sub", STOMP_PROTOCOLS, null);
    JavaClient pub = client("topic-pub", List.of(), null);
    sub.subscribe("t1", "/topic/spring.bodies", null);

    pub.send("/topic/spring.bodies", "text/plain;charset=UTF-8", "grüße, text");
    byte[] bin = new byte[256];
    for (int i = 0; i < bin.length; i++) {
      bin[i] = (byte) i; // includes NUL, newlines and bytes invalid as UTF-8
    }
    pub.send("/topic/spring.bodies", "application/octet-stream", bin);

    JavaClient.Frame text = sub.frames.first(f -> f.text().equals("grüße, text"), "the text message");
    assertThat(text.headers().getContentType().toString()).isEqualTo("text/plain;charset=UTF-8");
    assertThat(text.headers().getSubscription()).isEqualTo("t1");
    assertThat(text.headers().getMessageId()).isNotBlank();

    JavaClient.Frame b = sub.frames.first(
        f -> "application/octet-stream".equals(String.valueOf(f.headers().getContentType())), "the binary message");
    assertThat(b.payload()).isEqualTo(bin);
    assertThat(b.headers().getContentLength()).isEqualTo(256);
    // One STOMP frame per WebSocket message: text for the text body, binary
    // for the octet-stream one.
    assertThat(sub.ws.messages.first(w -> !w.out() && w.text().startsWith("MESSAGE") && w.text().contains("grüße"),
        "the text MESSAGE on the wire").binary()).isFalse();
    assertThat(sub.ws.messages.first(w -> !w.out() && w.text().startsWith("MESSAGE")
        && w.text().contains("application/octet-stream"), "the binary MESSAGE on the wire").binary()).isTrue();
  }

  @Test
  void queueWithClientAcknowledgement() throws Exception {
    JavaClient producer = client("queue-producer", STOMP_PROTOCOLS, null);
    JavaClient first = client("queue-consumer-1", STOMP_PROTOCOLS, null);
    first.subscribe("q1", "/queue/spring.work", "client-individual");
    producer.send("/queue/spring.work", "text/plain", "job-1");
    producer.send("/queue/spring.work", "text/plain", "job-2");

    JavaClient.Frame j1 = first.frames.first(f -> f.text().equals("job-1"), "job-1");
    first.frames.first(f -> f.text().equals("job-2"), "job-2");
    String ack = j1.headers().getAck();
    assertThat(ack).as("1.2 MESSAGE on a client-ack subscription carries ack").isNotBlank();
    // Acknowledge job-1 only (auto receipt: the broker confirms the ACK).
    first.awaitReceipt(first.session.acknowledge(ack, true), "ACK job-1");
    first.session.disconnect();

    // job-2 was never acknowledged: it goes to the next consumer, job-1 not.
    JavaClient second = client("queue-consumer-2", STOMP_PROTOCOLS, null);
    second.subscribe("q2", "/queue/spring.work", "client");
    JavaClient.Frame again = second.frames.first(f -> f.text().equals("job-2"), "job-2 redelivered");
    second.awaitReceipt(second.session.acknowledge(again.headers().getAck(), true), "ACK job-2");
    producer.send("/queue/spring.work", "text/plain", "job-3");
    second.frames.first(f -> f.text().equals("job-3"), "job-3");
    assertThat(second.frames.matching(f -> f.text().equals("job-1"))).as("acknowledged job-1").isEmpty();
  }

  @Test
  void userDestinations() throws Exception {
    JavaClient x = client("user-x", STOMP_PROTOCOLS, "spring-x");
    JavaClient y = client("user-y", List.of(), "spring-y");
    assertThat(x.connected.getFirst("user-name")).isEqualTo("spring-x");
    x.subscribe("u1", "/user/queue/inbox", null);
    y.subscribe("u1", "/user/queue/inbox", null);

    y.send("/user/spring-x/queue/inbox", "text/plain", "for x");
    x.send("/user/spring-y/queue/inbox", "text/plain", "for y");

    JavaClient.Frame gotX = x.frames.first(f -> f.text().equals("for x"), "x's message");
    assertThat(gotX.headers().getDestination()).isEqualTo("/user/queue/inbox");
    JavaClient.Frame gotY = y.frames.first(f -> f.text().equals("for y"), "y's message");
    assertThat(gotY.headers().getDestination()).isEqualTo("/user/queue/inbox");
    // Each got exactly its own: both messages were sent (with receipts)
    // before either arrived, so nothing else is on its way.
    assertThat(x.frames.snapshot()).extracting(JavaClient.Frame::text).containsExactly("for x");
    assertThat(y.frames.snapshot()).extracting(JavaClient.Frame::text).containsExactly("for y");
  }

  @Test
  void errorFrameReachesTheSessionHandler() throws Exception {
    JavaClient c = client("error", STOMP_PROTOCOLS, null);
    StompHeaders h = new StompHeaders();
    h.setDestination("/nowhere/at-all");
    c.session.send(h, "x".getBytes(StandardCharsets.UTF_8));
    JavaClient.Frame err = c.errors.first(f -> true, "an ERROR frame");
    assertThat(err.headers().getFirst("message")).isEqualTo("invalid destination");
    assertThat(err.headers().getFirst("receipt-id")).as("the bad SEND asked for a receipt").isNotBlank();
    c.events.first(e -> e.startsWith("transport error") || e.startsWith("exception"), Duration.ofSeconds(15),
        "the connection to close");
  }
}
