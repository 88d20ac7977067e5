package indexer

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestStreamErrorClasses(t *testing.T) {
	inUseErr := fmt.Errorf("start replication on slot s: %w", &pgconn.PgError{Code: "55006", Message: `replication slot "s" is active for PID 42`})
	cases := []struct {
		err          error
		fatal, inUse bool
	}{
		{errors.New("replication stream: receive: unexpected EOF"), false, false},
		{fmt.Errorf("replication connection: %w", &pgconn.PgError{Code: "57P03", Message: "the database system is starting up"}), false, false},
		{fmt.Errorf("replication stream: %w", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}), false, false},
		{inUseErr, false, true},
		{errors.New("replication slot s does not exist"), true, false},
		{errors.New("replication slot s has lost required WAL (wal_status lost); drop it and snapshot again"), true, false},
		{errors.New("replication stream at 0/16B3748: table public.t: delete without old key"), true, false},
		{fmt.Errorf("x: %w", &pgconn.PgError{Code: "28P01", Message: "password authentication failed"}), true, false},
	}
	for _, c := range cases {
		if got := fatalStreamError(c.err); got != c.fatal {
			t.Errorf("fatalStreamError(%v) = %v, want %v", c.err, got, c.fatal)
		}
		if got := inUse(c.err); got != c.inUse {
			t.Errorf("inUse(%v) = %v, want %v", c.err, got, c.inUse)
		}
	}
}
