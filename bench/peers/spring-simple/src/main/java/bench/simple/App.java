package bench.simple;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.context.annotation.Configuration;
import org.springframework.messaging.simp.config.MessageBrokerRegistry;
import org.springframework.web.socket.config.annotation.EnableWebSocketMessageBroker;
import org.springframework.web.socket.config.annotation.StompEndpointRegistry;
import org.springframework.web.socket.config.annotation.WebSocketMessageBrokerConfigurer;
import org.springframework.web.socket.config.annotation.WebSocketTransportRegistration;

/**
 * The benchmark peer: Spring's simple in-memory broker for /topic and /queue,
 * reached by raw STOMP over WebSocket on /ws (no SockJS). Clients SEND
 * straight to /topic/... and /queue/..., which the simple broker handles
 * without any application controller.
 */
@SpringBootApplication
public class App {
    public static void main(String[] args) {
        SpringApplication.run(App.class, args);
    }

    @Configuration
    @EnableWebSocketMessageBroker
    public static class Broker implements WebSocketMessageBrokerConfigurer {
        @Override
        public void registerStompEndpoints(StompEndpointRegistry registry) {
            registry.addEndpoint("/ws").setAllowedOriginPatterns("*");
        }

        @Override
        public void configureMessageBroker(MessageBrokerRegistry registry) {
            registry.enableSimpleBroker("/topic", "/queue");
        }

        @Override
        public void configureWebSocketTransport(WebSocketTransportRegistration registration) {
            // Large enough that a benchmark burst is measured, not refused.
            registration.setSendBufferSizeLimit(4 * 1024 * 1024);
            registration.setSendTimeLimit(20 * 1000);
        }
    }
}
