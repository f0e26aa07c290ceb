# stompbus broker image: a static binary on a distroless base.
# Build:  docker build -t stompbus .
# Run:    docker run -p 8080:8080 -p 61613:61613 -v stompbus-data:/data stompbus
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/broker ./cmd/broker \
    && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/broker /usr/local/bin/broker
# /data holds what survives a restart (the embedded NATS JetStream store);
# owned by the nonroot user so that a fresh named volume is writable.
COPY --from=build --chown=65532:65532 /out/data /data
VOLUME ["/data"]
ENV STOMPBUS_HTTP=:8080 \
    STOMPBUS_STOMP=:61613 \
    STOMPBUS_DATA=/data
# 8080 HTTP and WebSocket, 61613 plain STOMP, 6222 embedded NATS routes.
EXPOSE 8080 61613 6222
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/broker"]
