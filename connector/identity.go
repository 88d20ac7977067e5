package connector

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ErrReplicaIdentity is wrapped by CheckReplicaIdentity's error.
var ErrReplicaIdentity = errors.New("replica identity cannot identify deleted rows")

const replicaIdentityIndexSQL = `
SELECT i.indisprimary, ic.relname
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
WHERE n.nspname = $1 AND c.relname = $2 AND i.indisreplident`

// CheckReplicaIdentity makes sure that the table's deletes and primary-key
// changes carry the old primary key in the replication stream: its replica
// identity must be DEFAULT (the primary key), FULL, or USING INDEX of the
// primary key's own index. NOTHING sends no old key at all, and another
// index sends other columns; either would leave deleted rows in the index.
// The error says how to fix it.
func CheckReplicaIdentity(ctx context.Context, db Querier, info TableInfo) error {
	fix := fmt.Sprintf("run ALTER TABLE %s REPLICA IDENTITY DEFAULT (or REPLICA IDENTITY FULL)", info.Name)
	switch info.ReplicaIdentity {
	case 'd', 'f':
		return nil
	case 'n':
		return fmt.Errorf("table %s has REPLICA IDENTITY NOTHING, so its deletes carry no key: %w; %s", info.Name, ErrReplicaIdentity, fix)
	case 'i':
		var primary bool
		var index string
		err := db.QueryRow(ctx, replicaIdentityIndexSQL, info.Name.Schema, info.Name.Name).Scan(&primary, &index)
		if errors.Is(err, pgx.ErrNoRows) {
			// The index was dropped: PostgreSQL then behaves as NOTHING.
			return fmt.Errorf("table %s has REPLICA IDENTITY USING INDEX of an index that no longer exists: %w; %s", info.Name, ErrReplicaIdentity, fix)
		}
		if err != nil {
			return fmt.Errorf("replica identity of %s: %w", info.Name, err)
		}
		if primary {
			return nil
		}
		return fmt.Errorf("table %s has REPLICA IDENTITY USING INDEX %s, which is not its primary key, so its deletes do not carry the primary key: %w; %s",
			info.Name, QuoteIdent(index), ErrReplicaIdentity, fix)
	}
	return fmt.Errorf("table %s has an unknown replica identity %q", info.Name, info.ReplicaIdentity)
}
