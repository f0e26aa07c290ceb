# stompbus: `make run` starts a node with the demo page; `make test` runs
# every test (what CI runs), after `make deps` (scripts/deps.sh) installed
# or checked what the tests need.
GO ?= go
# FUZZTIME (e.g. 10m) fuzzes every target for that long instead of its
# count below.
FUZZTIME ?=
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

# Each fuzz target runs a bounded number of executions (about ten seconds'
# worth on a 2-core machine); crashers are kept as seeds in the package's
# testdata/fuzz. A count, not a duration: with -fuzztime as a duration
# Go's fuzz coordinator (go1.26) can fail a run at the deadline with a bare
# "context deadline exceeded" when a worker is still busy
# (golang/go#75804; FuzzSubjects failed so in a CI run with no crasher).
FUZZ_TARGETS := frame:FuzzParse:100000 frame:FuzzParseRest:100000 wsdeflate:FuzzInflate:50000 \
	session:FuzzSessionFrames:8000 session:FuzzSessionStream:30000 \
	server:FuzzWSMessagesText:20000 server:FuzzClientAddress:30000 server:FuzzFrontHead:20000 \
	cluster:FuzzSubjects:6000 cluster:FuzzDecodeEnvelope:20000 \
	history:FuzzParseStart:20000 history:FuzzParseRules:20000 queues:FuzzParsePolicies:20000 \
	durable/spec:FuzzParseHeaders:100000 durable:FuzzMatch:20000 durable:FuzzPatternPrefix:20000
test-fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; fn=$${rest%%:*}; n=$${rest##*:}x; \
		budget=$(FUZZTIME); budget=$${budget:-$$n}; echo "fuzz ./$$pkg $$fn: $$budget"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $$budget ./$$pkg; \
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
