package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

func execSQL(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
		return fmt.Errorf("%s: %w", firstLine(sql), err)
	}
	return nil
}

func queryRow(ctx context.Context, dsn, sql string, dst ...any) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, sql).Scan(dst...); err != nil {
		return fmt.Errorf("%s: %w", firstLine(sql), err)
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// vocabulary gives generated documents a natural spread of words, so that
// tokenizing and hash-embedding them costs what prose costs.
var vocabulary = strings.Fields(`the of and to in is that for it as was with be by on not he this are or his from at
which but have an they you were her she there been one all we their has would when if so no will can more
other its about into than them only some could time these two may then first any my now such like our over
man me even most made after also did many before must through back years where much your way well down should
because each just those people how too little state good very make world still own see men work long get here
between both life being under never day same another know while last might us great old year off come since
against go came right used take three replication database index vector search document change commit log
stream slot server client query table column row value key update insert delete batch queue worker latency
throughput memory buffer cache disk network schema version release field object collection embedding model
chunk token paragraph sentence word text render template metadata author category title body summary note
river mountain forest garden window kitchen morning evening winter summer autumn spring ocean island harbor
village market bridge castle valley meadow candle letter journey silver golden quiet gentle bright heavy`)

// rowGen produces the rows of public.docs: a title and a body of words
// drawn from the vocabulary, deterministically from the row id.
type rowGen struct{ words int }

func (g rowGen) body(id int64, salt uint64) string {
	r := rand.New(rand.NewPCG(uint64(id), salt))
	var sb strings.Builder
	sb.Grow(g.words * 7)
	for i := 0; i < g.words; i++ {
		if i > 0 {
			if i%15 == 0 {
				sb.WriteString(". ")
			} else {
				sb.WriteByte(' ')
			}
		}
		sb.WriteString(vocabulary[r.IntN(len(vocabulary))])
	}
	sb.WriteByte('.')
	return sb.String()
}

func (g rowGen) row(id int64) []any {
	return []any{id, "Document " + strconv.FormatInt(id, 10) + " " + vocabulary[id%int64(len(vocabulary))],
		g.body(id, 1), "author" + strconv.FormatInt(id%50, 10), "cat" + strconv.FormatInt(id%10, 10)}
}

var docsColumns = []string{"id", "title", "body", "author", "category"}

// committed describes a commit the benchmark made.
type committed struct {
	At     time.Time     // when COMMIT returned
	EndLSN pglogrepl.LSN // WAL insert position right after the commit
}

// fillRows inserts rows first..first+n-1 with COPY in one transaction.
func fillRows(ctx context.Context, dsn string, g rowGen, first int64, n int) (committed, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return committed{}, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		return committed{}, err
	}
	defer tx.Rollback(context.Background())
	i := 0
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"public", "docs"}, docsColumns, pgx.CopyFromFunc(func() ([]any, error) {
		if i == n {
			return nil, nil
		}
		r := g.row(first + int64(i))
		i++
		return r, nil
	}))
	if err != nil {
		return committed{}, fmt.Errorf("copy %d rows: %w", n, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return committed{}, err
	}
	c := committed{At: time.Now()}
	c.EndLSN, err = insertLSN(ctx, conn)
	return c, err
}

func insertLSN(ctx context.Context, conn *pgx.Conn) (pglogrepl.LSN, error) {
	var s string
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&s); err != nil {
		return 0, err
	}
	return pglogrepl.ParseLSN(s)
}
