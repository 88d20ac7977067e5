package connector

import (
	"context"
	"reflect"
	"testing"
	"time"
)

// FetchRows returns exactly what the stream decoded for the same rows.
func TestFetchRowsMatchesStream(t *testing.T) {
	h := newHarness(t, typesDDL+`
CREATE TABLE multi (
	tenant text, at timestamptz, u uuid, "Body Text" text, m mood,
	PRIMARY KEY (tenant, at, u));`, "typed", "multi")
	h.start(16, 100*time.Millisecond, nil)
	mustExec(t, h.db, `INSERT INTO typed VALUES (1,
		'héllo 🌍', 'x', 1, 2, 3, '4.5', false, 1.25, 2.5,
		'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '[1, "a"]', '{"k": [true]}',
		'2024-02-29 13:14:15.5+02', '2001-02-03 04:05:06', '2024-02-29',
		ARRAY['a', NULL], ARRAY[1], 'ok', 7, '\x00ff', '1 mon', '::1')`)
	mustExec(t, h.db, `INSERT INTO typed (id) VALUES (2)`)
	mustExec(t, h.db, `INSERT INTO multi VALUES
		('acme "quoted", inc', '2024-01-01 00:00:00+00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'one', 'sad'),
		('acme "quoted", inc', '2024-01-01 00:00:00.000001+00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'two', NULL),
		('{x,y}', '2024-01-01 00:00:00+00', '00000000-0000-0000-0000-000000000000', 'three', 'happy')`)

	streamed := map[string]*Change{}
	for range 3 {
		changes, _ := h.tx()
		for _, c := range changes {
			streamed[c.Table.Name+" "+c.Key.String()] = c
		}
	}
	if len(streamed) != 5 {
		t.Fatalf("streamed %d rows", len(streamed))
	}

	ctx := context.Background()
	for _, table := range []string{"typed", "multi"} {
		var keys []Key
		for _, c := range streamed {
			if c.Table.Name == table {
				keys = append(keys, c.Key, c.Key) // duplicates are fine
			}
		}
		info := h.info(table)
		missing := make(Key, len(info.Key))
		for i := range missing {
			missing[i] = map[string]string{"id": "999", "tenant": "nobody", "at": "2000-01-01 00:00:00+00", "u": "00000000-0000-0000-0000-000000000001"}[info.Key[i]]
		}
		rows, err := FetchRows(ctx, h.db, info, append(keys, missing))
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != len(keys)/2 {
			t.Errorf("%s: fetched %d rows, want %d", table, len(rows), len(keys)/2)
		}
		for _, k := range keys {
			got, ok := rows[k.String()]
			if !ok {
				t.Errorf("%s: row %s not fetched", table, k)
				continue
			}
			if want := streamed[table+" "+k.String()].Row; !reflect.DeepEqual(got, want) {
				t.Errorf("%s %s:\nfetched  %#v\nstreamed %#v", table, k, got, want)
			}
		}
	}

	rows, err := FetchRows(ctx, h.db, h.info("typed"), nil)
	if err != nil || len(rows) != 0 {
		t.Errorf("no keys: %v %v", rows, err)
	}
	if _, err := FetchRows(ctx, h.db, h.info("multi"), []Key{{"just one"}}); err == nil {
		t.Error("short key accepted")
	}
}
