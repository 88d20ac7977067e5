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
# exports their addresses); packages run two at a time on the shared servers.
test:
	go vet ./...
	go run ./scripts/testenv -- go test -count=1 -timeout 40m -p 2 $(TESTFLAGS) ./...

lint:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt would reformat:"; echo "$$unformatted"; exit 1; \
	fi
	go vet ./...

demo:
	go run ./scripts/demo

bench:
	@if [ -d bench ]; then \
		go run ./bench; \
	else \
		echo "bench: no benchmark program yet (./bench arrives with a later change)"; \
	fi

clean:
	rm -rf bin dist
