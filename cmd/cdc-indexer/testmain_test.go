package main

import (
	"os"
	"testing"

	"github.com/cdc-indexer/cdc-indexer/internal/testenv"
)

// Tests of check and status run against real PostgreSQL and Weaviate.
func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
