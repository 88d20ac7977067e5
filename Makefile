# cdc-indexer build, test and demo entry points.

export PATH := /usr/local/go/bin:$(PATH)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# Extra flags for go test, e.g. make test TESTFLAGS='-v -run TestSink'.
TESTFLAGS ?=

.PHONY: build test lint demo bench clean

build:
	go build -trimpath -ldflags "$(LDFLAGS)" -o bin/cdc-indexer ./cmd/cdc-indexer

# One PostgreSQL and one Weaviate serve every test package (scripts/testenv
# exports their addresses). Packages run one at a time: replication slot names
# are cluster-wide, and tests of different packages use the same slot name.
# Unit packages run with the race detector; the end-to-end tests run the
# connector as a built binary too, so they run without it.
# deploy/ is a module of its own (its checks use the Kubernetes and
# Prometheus libraries, which stay out of the connector's build).
test:
	go mod tidy -diff
	go vet ./...
	cd deploy && go mod tidy -diff && go vet ./... && go test -count=1 ./...
	go run ./scripts/testenv -- sh -c 'go test -race -count=1 -timeout 30m -p 1 $(TESTFLAGS) $$(go list ./... | grep -v /e2e$$) && go test -count=1 -timeout 40m -p 1 $(TESTFLAGS) ./e2e'

lint:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt would reformat:"; echo "$$unformatted"; exit 1; \
	fi
	go vet ./...

demo:
	go run ./scripts/demo

# Throughput, freshness, memory and embedding cost against the machine's
# limits, with private servers; prints one table and writes bench/results.json
# (bench/README.md). Flags go in BENCHFLAGS, e.g.
# make bench BENCHFLAGS='-sections memory' or BENCHFLAGS=-quick.
BENCHFLAGS ?=

bench:
	go run ./bench $(BENCHFLAGS)

clean:
	rm -rf bin dist
