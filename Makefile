# stompbus: `make run` starts a node with the demo page; `make test` runs
# every test (what CI runs after .ci/run installed the tools).
GO ?= go
FUZZTIME ?= 20s
BIN := bin

.PHONY: run build test test-go test-fuzz test-js test-py vet bench
run:
	$(GO) run ./cmd/broker

build:
	$(GO) build -o $(BIN)/broker ./cmd/broker

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1)
	$(GO) vet ./...

test: vet test-go test-fuzz test-js test-py
	@echo "make test: all suites passed"

test-go:
	$(GO) test -race -count=1 -timeout 15m ./...

# Each fuzz target runs for a bounded time; crashers are kept as seeds in
# the package's testdata/fuzz.
test-fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./frame

test-js:
	cd tests/js && npm test

test-py:
	python3 -m pytest -q tests/py

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./frame ./router ./server
