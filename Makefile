# stompbus: `make run` starts a node with the demo page; `make test` runs
# every test (what CI runs), after `make deps` (scripts/deps.sh) installed
# or checked what the tests need.
GO ?= go
FUZZTIME ?= 10s
BIN := bin
# Tools that scripts/deps.sh installs at pinned versions.
export PATH := $(CURDIR)/.tools/bin:$(PATH)

.PHONY: faults run build deps test test-go test-fuzz test-js test-py test-web test-spring test-compose test-k8s vet bench
run:
	$(GO) run ./cmd/broker

build:
	$(GO) build -buildvcs=auto -o $(BIN)/broker ./cmd/broker

# Installs or checks what the tests need; every suite below runs it first.
deps:
	scripts/deps.sh
vet test-go test-fuzz test-js test-py test-web test-spring test-compose test-k8s faults: deps

# staticcheck and deadcode are the versions scripts/deps.sh pins, from
# .tools/bin. deadcode lists functions the broker binary never reaches;
# test-only implementations live in packages cmd/broker does not import
# (queues/memqueue), so the list must be empty.
vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1)
	$(GO) vet ./...
	staticcheck ./...
	@out="$$(deadcode ./cmd/broker)"; test -z "$$out" || (echo "$$out"; echo "deadcode: unreachable functions above"; exit 1)

test: vet test-go test-fuzz test-js test-py test-web test-spring test-compose test-k8s
	@echo "make test: all suites passed"

test-go:
	$(GO) test -race -count=1 -timeout 15m ./...

# Each fuzz target runs for a bounded time; crashers are kept as seeds in
# the package's testdata/fuzz.
FUZZ_TARGETS := frame:FuzzParse frame:FuzzParseRest wsdeflate:FuzzInflate session:FuzzSessionFrames session:FuzzSessionStream \
	server:FuzzWSMessagesText server:FuzzClientAddress server:FuzzFrontHead cluster:FuzzSubjects cluster:FuzzDecodeEnvelope \
	history:FuzzParseStart history:FuzzParseRules queues:FuzzParsePolicies durable/spec:FuzzParseHeaders durable:FuzzMatch durable:FuzzPatternPrefix
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

# The Kubernetes manifests against the Kubernetes JSON schemas, offline:
# kubeconform reads the schemas deps.sh put in .tools/schemas.
test-k8s:
	deploy/kubernetes/validate.sh

# The fault suite (tests/faults; root, ip, iptables): a short run of every
# fault once is part of test-go; this is the long run, FAULT_RUNS faults in
# a shuffled cycle, its table at the end of faults.log.
FAULT_RUNS ?= 50
faults:
	STOMPBUS_FAULT_RUNS=$(FAULT_RUNS) $(GO) test -count=1 -timeout 0 -run TestFaults -v ./tests/faults > faults.log 2>&1; \
		st=$$?; grep -v '^        time=' faults.log | tail -100; exit $$st

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./frame ./router ./server
