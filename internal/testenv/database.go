package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres returns a DSN (postgres://postgres@127.0.0.1:PORT/DBNAME?sslmode=disable)
// to a fresh, empty database created for this test in the shared cluster.
// At cleanup it terminates the database's backends, drops its replication
// slots and drops it, so no test leaves a slot retaining WAL.
func Postgres(t testing.TB) string {
	t.Helper()
	admin := PostgresAdmin(t)
	db := databaseName(t.Name())
	dsn, err := dsnForDatabase(admin, db)
	if err != nil {
		t.Fatalf("TEST ENVIRONMENT UNAVAILABLE: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("TEST ENVIRONMENT UNAVAILABLE: connect to the test cluster (%s): %v", redactDSN(admin), err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		t.Fatalf("testenv: create database %s: %v", db, err)
	}
	t.Cleanup(func() {
		if err := dropDatabase(admin, db); err != nil {
			t.Errorf("testenv: cleanup of database %s: %v", db, err)
		}
	})
	return dsn
}

// databaseName makes a valid, unique, lower-case database name that still
// shows which test it belongs to: t_<test name>_<random>.
func databaseName(testName string) string {
	const maxLen = 63 // NAMEDATALEN-1; longer names are silently truncated
	suffix := "_" + randomHex(4)
	name := "t_" + sanitize(strings.ToLower(testName), func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
	}, '_')
	if len(name) > maxLen-len(suffix) {
		name = name[:maxLen-len(suffix)]
	}
	return name + suffix
}

// dsnForDatabase swaps the database in a URL-form admin DSN.
func dsnForDatabase(adminDSN, db string) (string, error) {
	u, err := url.Parse(adminDSN)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("the admin DSN %s must be a postgres:// URL", redactDSN(adminDSN))
	}
	u.Path = "/" + db
	u.RawPath = ""
	return u.String(), nil
}

// dropDatabase removes a test database even when a test left a connector
// streaming from it: slots must go before DROP DATABASE, and an active slot
// can only be dropped once its walsender is gone, which takes a moment after
// pg_terminate_backend. Hence the retry loop.
func dropDatabase(adminDSN, db string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())

	steps := []string{
		`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		  WHERE datname = $1 AND pid <> pg_backend_pid()`,
		`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
		  WHERE database = $1 AND active_pid IS NOT NULL`,
		`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
		  WHERE database = $1 AND NOT active`,
	}
	var lastErr error
	for {
		lastErr = nil
		for _, q := range steps {
			if _, err := conn.Exec(ctx, q, db); err != nil {
				lastErr = err
			}
		}
		if lastErr == nil {
			_, lastErr = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
			if lastErr == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up: %w", lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sanitize keeps the runes ok accepts and replaces runs of others with sep
// (dropped when sep is 0).
func sanitize(s string, ok func(rune) bool, sep rune) string {
	var b strings.Builder
	pending := false
	for _, r := range s {
		if ok(r) {
			if pending && sep != 0 && b.Len() > 0 {
				b.WriteRune(sep)
			}
			pending = false
			b.WriteRune(r)
			continue
		}
		pending = true
	}
	return b.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
