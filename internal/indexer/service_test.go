package indexer

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/cdc-indexer/cdc-indexer/internal/config"
)

// A start that cannot be made returns its error and leaves nothing behind:
// the observability port is free again, so a supervisor's retry can bind it.
func TestStartFailureReleasesTheListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dead, err := net.Listen("tcp", "127.0.0.1:0") // a port nothing answers on
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()

	cfg := &config.Config{}
	cfg.Observability.Listen = addr
	cfg.Postgres.DSN = "postgres://u@" + deadAddr + "/db?connect_timeout=2"
	s, err := Start(context.Background(), cfg, zerolog.Nop(), Options{})
	if err == nil {
		s.Stop(context.Background())
		t.Fatal("Start succeeded without a database")
	}
	if !strings.Contains(err.Error(), deadAddr) && !strings.Contains(err.Error(), "connect") {
		t.Errorf("the error does not say what could not be reached: %v", err)
	}
	again, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the observability port is still held after a failed start: %v", err)
	}
	again.Close()
}
