package io.stompbus.compat.spring;

import java.security.Principal;
import java.util.Map;
import org.springframework.beans.BeansException;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.beans.factory.config.BeanPostProcessor;
import org.springframework.boot.WebApplicationType;
import org.springframework.boot.autoconfigure.EnableAutoConfiguration;
import org.springframework.boot.builder.SpringApplicationBuilder;
import org.springframework.boot.web.context.WebServerApplicationContext;
import org.springframework.context.ApplicationListener;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Import;
import org.springframework.messaging.Message;
import org.springframework.messaging.MessageChannel;
import org.springframework.messaging.handler.annotation.DestinationVariable;
import org.springframework.messaging.handler.annotation.MessageMapping;
import org.springframework.messaging.handler.annotation.Payload;
import org.springframework.messaging.handler.annotation.SendTo;
import org.springframework.messaging.simp.SimpMessagingTemplate;
import org.springframework.messaging.simp.annotation.SendToUser;
import org.springframework.messaging.simp.broker.BrokerAvailabilityEvent;
import org.springframework.messaging.simp.config.ChannelRegistration;
import org.springframework.messaging.simp.config.MessageBrokerRegistry;
import org.springframework.messaging.simp.stomp.StompCommand;
import org.springframework.messaging.simp.stomp.StompHeaderAccessor;
import org.springframework.messaging.simp.user.UserRegistryMessageHandler;
import org.springframework.messaging.support.ChannelInterceptor;
import org.springframework.messaging.support.MessageHeaderAccessor;
import org.springframework.stereotype.Controller;
import org.springframework.web.socket.config.annotation.EnableWebSocketMessageBroker;
import org.springframework.web.socket.config.annotation.StompEndpointRegistry;
import org.springframework.web.socket.config.annotation.WebSocketMessageBrokerConfigurer;

/**
 * A small Spring Boot web app that uses stompbus as its external STOMP
 * broker: the relay configuration docs/spring.md shows, a STOMP endpoint on
 * /ws whose CONNECT login names the user, and a controller with
 * {@code @SendTo}, {@code @SendToUser} and {@code convertAndSendToUser}.
 * No component scanning: the test package holds other things.
 */
@Configuration(proxyBeanMethods = false)
@EnableAutoConfiguration
@EnableWebSocketMessageBroker
@Import({RelayApp.Chat.class, RelayApp.Availability.class})
public class RelayApp implements WebSocketMessageBrokerConfigurer {
  @Value("${stompbus.relay.host}")
  private String relayHost;

  @Value("${stompbus.relay.port}")
  private int relayPort;

  @Value("${stompbus.relay.system-passcode:system-secret}")
  private String systemPasscode;

  /** Starts the app on a free port with its relay pointing at host:port. */
  static ConfigurableApplicationContext run(String name, String host, int port) {
    return run(name, host, port, Map.of());
  }

  static ConfigurableApplicationContext run(String name, String host, int port, Map<String, Object> more) {
    Map<String, Object> props = new java.util.HashMap<>(Map.of(
        "server.port", "0",
        "server.address", "127.0.0.1",
        "spring.application.name", name,
        "spring.main.banner-mode", "off",
        "spring.jmx.enabled", "false",
        "stompbus.relay.host", host,
        "stompbus.relay.port", String.valueOf(port)));
    props.putAll(more);
    return new SpringApplicationBuilder(RelayApp.class)
        .web(WebApplicationType.SERVLET)
        .properties(props)
        .run();
  }

  static String wsUrl(ConfigurableApplicationContext ctx) {
    return "ws://127.0.0.1:" + ((WebServerApplicationContext) ctx).getWebServer().getPort() + "/ws";
  }

  @Override
  public void configureMessageBroker(MessageBrokerRegistry registry) {
    registry.enableStompBrokerRelay("/topic", "/queue")
        .setRelayHost(relayHost)
        .setRelayPort(relayPort)
        .setSystemLogin("spring-system")
        .setSystemPasscode(systemPasscode)
        .setClientLogin("spring-client")
        .setClientPasscode("client-secret")
        .setSystemHeartbeatSendInterval(5000)
        .setSystemHeartbeatReceiveInterval(5000)
        .setVirtualHost("stompbus")
        .setUserDestinationBroadcast("/topic/unresolved-user-destination")
        .setUserRegistryBroadcast("/topic/simp-user-registry");
    registry.setApplicationDestinationPrefixes("/app");
    registry.setPreservePublishOrder(true);
  }

  @Override
  public void registerStompEndpoints(StompEndpointRegistry registry) {
    registry.addEndpoint("/ws").setAllowedOriginPatterns("*");
  }

  /** The CONNECT frame's login names the user (stands in for real authentication). */
  @Override
  public void configureClientInboundChannel(ChannelRegistration registration) {
    registration.interceptors(new ChannelInterceptor() {
      @Override
      public Message<?> preSend(Message<?> message, MessageChannel channel) {
        StompHeaderAccessor a = MessageHeaderAccessor.getAccessor(message, StompHeaderAccessor.class);
        if (a != null && StompCommand.CONNECT.equals(a.getCommand()) && a.getLogin() != null) {
          a.setUser(new User(a.getLogin()));
        }
        return message;
      }
    });
  }

  /**
   * Broadcast the user registry every 2 s instead of every 10 s, so the
   * two-instance test need not wait long for the instances to learn each
   * other's users.
   */
  @Bean
  static BeanPostProcessor fasterRegistryBroadcast() {
    return new BeanPostProcessor() {
      @Override
      public Object postProcessBeforeInitialization(Object bean, String beanName) throws BeansException {
        if (bean instanceof UserRegistryMessageHandler h) {
          h.setRegistryExpirationPeriod(4000);
        }
        return bean;
      }
    };
  }

  record User(String name) implements Principal {
    @Override
    public String getName() {
      return name;
    }
  }

  /** Message handlers: what the app does with /app/... SENDs. */
  @Controller
  static class Chat {
    private final SimpMessagingTemplate template;

    Chat(SimpMessagingTemplate template) {
      this.template = template;
    }

    /** Replies to the sending session only. */
    @MessageMapping("/echo")
    @SendToUser(destinations = "/queue/echo", broadcast = false)
    String echo(@Payload String body, Principal user) {
      return user.getName() + " said " + body;
    }

    /** Replies to every session of the sending user. */
    @MessageMapping("/echo-all")
    @SendToUser("/queue/echo")
    String echoAll(@Payload String body, Principal user) {
      return user.getName() + " said to all " + body;
    }

    /** A direct message to another user, on whichever app instance they are. */
    @MessageMapping("/dm/{to}")
    void dm(@DestinationVariable String to, @Payload String body, Principal from) {
      template.convertAndSendToUser(to, "/queue/inbox", from.getName() + ": " + body);
    }

    /** Published by the relay's system session. */
    @MessageMapping("/shout")
    @SendTo("/topic/shouts")
    String shout(@Payload String body, Principal from) {
      return from.getName() + " shouts " + body;
    }
  }

  /** Records BrokerAvailabilityEvents: true when the relay's system session is connected. */
  static class Availability implements ApplicationListener<BrokerAvailabilityEvent> {
    final Await<Boolean> events = new Await<>("BrokerAvailabilityEvent");

    @Override
    public void onApplicationEvent(BrokerAvailabilityEvent event) {
      FrameLog.add("spring", "---", "BrokerAvailabilityEvent available=" + event.isBrokerAvailable());
      events.add(event.isBrokerAvailable());
    }
  }
}
