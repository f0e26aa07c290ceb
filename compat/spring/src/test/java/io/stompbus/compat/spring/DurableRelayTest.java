package io.stompbus.compat.spring;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.messaging.simp.stomp.StompHeaders;
import org.springframework.messaging.simp.stomp.StompSession;
import org.springframework.scheduling.concurrent.ThreadPoolTaskScheduler;

/**
 * Durable topic subscriptions through Spring's {@code enableStompBrokerRelay},
 * with the headers a RabbitMQ user sends (id, durable:true,
 * auto-delete:false): the app's client subscribes, leaves, comes back with
 * the same id and gets what was published meanwhile, in order; an
 * UNSUBSCRIBE with durable:true deletes the subscription. The relay logs
 * every client session in with its own client login, so the subscription
 * belongs to that login and the client's id names it.
 */
@ExtendWith(DumpOnFailure.class)
class DurableRelayTest {
  private static final Map<String, String> DURABLE = Map.of("durable", "true", "auto-delete", "false");
  private static Broker broker;
  private static ConfigurableApplicationContext app;
  private static ThreadPoolTaskScheduler scheduler;
  private static String appUrl;
  private final List<JavaClient> clients = new ArrayList<>();

  @BeforeAll
  static void start() throws Exception {
    broker = Broker.start("durable", "-users", Broker.usersFile("spring-system", "spring-client").toString());
    app = RelayApp.run("durable-app", "127.0.0.1", broker.stompPort());
    app.getBean(RelayApp.Availability.class).events.first(Boolean.TRUE::equals, "the relay's system session to connect");
    appUrl = RelayApp.wsUrl(app);
    scheduler = new ThreadPoolTaskScheduler();
    scheduler.setPoolSize(2);
    scheduler.setThreadNamePrefix("durable-hb-");
    scheduler.initialize();
  }

  @AfterAll
  static void stop() {
    if (scheduler != null) {
      scheduler.shutdown();
    }
    if (app != null) {
      app.close();
    }
    if (broker != null) {
      broker.close();
    }
  }

  @AfterEach
  void closeClients() {
    clients.forEach(JavaClient::close);
  }

  private JavaClient client(String name, String login) throws Exception {
    JavaClient c = new JavaClient(name, scheduler);
    clients.add(c);
    return c.connect(appUrl, List.of(), login);
  }

  private static List<String> texts(List<JavaClient.Frame> frames) {
    return frames.stream().map(JavaClient.Frame::text).toList();
  }

  @Test
  void keptWhileAwayThenLiveThroughTheRelay() throws Exception {
    String dest = "/topic/spring-durable-news";
    JavaClient pub = client("publisher", "pat");
    JavaClient alice = client("alice", "alice");
    StompSession.Subscription sub = alice.subscribe("alice-news", dest, "client-individual", DURABLE);
    pub.send(dest, "text/plain", "seen");
    JavaClient.Frame seen = alice.frames.first(f -> f.text().equals("seen"), "the first message");
    alice.session.acknowledge(seen.headers().getAck(), true);
    // A plain UNSUBSCRIBE detaches (it does not delete); the SEND with a
    // RECEIPT after it on the same session shows it was acted on.
    sub.unsubscribe();
    alice.send("/topic/spring-durable-sync", "text/plain", "sync");
    alice.close();

    List<String> missed = IntStream.range(0, 30).mapToObj(i -> "m" + i).toList();
    for (String m : missed) {
      pub.send(dest, "text/plain", m);
    }
    JavaClient back = client("alice-again", "alice");
    back.subscribe("alice-news", dest, "auto", DURABLE);
    pub.send(dest, "text/plain", "live");
    List<JavaClient.Frame> got = back.frames.atLeast(31, f -> true, "the missed messages, then the live one");
    List<String> want = new ArrayList<>(missed);
    want.add("live");
    assertThat(texts(got)).containsExactlyElementsOf(want);
    assertThat(got).allSatisfy(f -> assertThat(f.headers().getDestination()).isEqualTo(dest));
  }

  @Test
  void unsubscribeWithDurableDeletesThroughTheRelay() throws Exception {
    String dest = "/topic/spring-durable-gone";
    JavaClient pub = client("publisher", "pat");
    JavaClient bob = client("bob", "bob");
    StompSession.Subscription sub = bob.subscribe("bob-gone", dest, "auto", DURABLE);
    StompHeaders h = new StompHeaders();
    h.set("durable", "true");
    sub.unsubscribe(h);
    // A SEND with a RECEIPT on the same session: the relay's connection
    // answers in order, so the UNSUBSCRIBE was acted on before it.
    bob.send("/topic/spring-durable-sync", "text/plain", "sync");
    pub.send(dest, "text/plain", "nobody keeps this");
    bob.subscribe("bob-gone", dest, "auto", DURABLE);
    pub.send(dest, "text/plain", "fresh");
    JavaClient.Frame f = bob.frames.first(x -> true, "a message after subscribing again");
    assertThat(f.text()).isEqualTo("fresh");
  }
}
