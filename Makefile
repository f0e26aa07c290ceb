# stompbus: `make run` starts a node with the demo page; `make test` runs
# every test (what CI runs after .ci/run installed the tools).
GO ?= go
FUZZTIME ?= 10s
BIN := bin

.PHONY: run build test test-go test-fuzz test-js test-py test-web test-spring test-compose vet bench
run:
	$(GO) run ./cmd/broker

build:
	$(GO) build -o $(BIN)/broker ./cmd/broker

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1)
	$(GO) vet ./...

test: vet test-go test-fuzz test-js test-py test-web test-spring test-compose
	@echo "make test: all suites passed"

test-go:
	$(GO) test -race -count=1 -timeout 15m ./...

# Each fuzz target runs for a bounded time; crashers are kept as seeds in
# the package's testdata/fuzz.
FUZZ_TARGETS := frame:FuzzParse session:FuzzSessionFrames session:FuzzSessionStream \
	server:FuzzWSMessagesText cluster:FuzzSubjects cluster:FuzzDecodeEnvelope
test-fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; echo "fuzz ./$$pkg $$fn for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) ./$$pkg; \
	done

test-js:
	cd tests/js && npm test

test-py:
	python3 -m pytest -q tests/py

# The demo page: the committed bundle must match its sources, and the
# browser suite drives it in Debian's Chromium.
test-web:
	webclient/check.sh
	tests/browser/test.sh

test-spring:
	compat/spring/test.sh

test-compose:
	docker-compose -f docker-compose.yml config -q

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./frame ./router ./server
