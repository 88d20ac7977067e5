// Package workload generates reproducible table contents and changes for
// end-to-end tests and benchmarks: long documents made of paragraphs, and
// update mixes in which most updates leave the indexed text alone.
//
// Everything is derived from a seed, so two runs with the same seed write
// the same rows and make the same changes.
package workload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// DB is what the generators write through: *pgx.Conn, *pgxpool.Pool, pgx.Tx.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Docs is a table of long documents: each row has a title and a body of
// Paragraphs paragraphs separated by blank lines, an author and a view
// count (metadata), and a note that the template does not read.
//
// Paragraphs are three or four sentences of common words, about 35 to 45
// cl100k_base tokens, so that with chunking.max_tokens 64 (see
// ChunkTokens) each paragraph is one chunk (the first with the title): an
// edit of one paragraph changes one chunk's text and leaves the others'
// alone.
type Docs struct {
	Table      string // default "docs"
	Paragraphs int    // per document; default 6
	Seed       uint64 // default 1
}

// ChunkTokens is the chunking.max_tokens that makes one chunk per paragraph.
const ChunkTokens = 64

func (w Docs) table() string {
	if w.Table == "" {
		return "docs"
	}
	return w.Table
}

func (w Docs) paragraphs() int {
	if w.Paragraphs <= 0 {
		return 6
	}
	return w.Paragraphs
}

// CreateSQL creates the table.
func (w Docs) CreateSQL() string {
	return fmt.Sprintf(`CREATE TABLE %s (
  id bigint PRIMARY KEY,
  title text NOT NULL,
  body text NOT NULL,
  author text,
  views int NOT NULL DEFAULT 0,
  note text
)`, w.table())
}

// Template is the table mapping's template.
func (w Docs) Template() string { return "{{.title}}\n\n{{.body}}" }

// Metadata is the table mapping's metadata columns.
func (w Docs) Metadata() []string { return []string{"author", "views"} }

// TextSQL is the rendered document in SQL, for comparisons.
func (w Docs) TextSQL() string { return "title || E'\\n\\n' || body" }

// rng is the generator for one purpose and id.
func (w Docs) rng(purpose string, id, step int) *rand.Rand {
	seed := w.Seed
	if seed == 0 {
		seed = 1
	}
	h := uint64(14695981039346656037)
	for _, b := range []byte(purpose) {
		h = (h ^ uint64(b)) * 1099511628211
	}
	return rand.New(rand.NewPCG(seed^h, uint64(id)<<20|uint64(step)))
}

// Document returns row id's title and body paragraphs as inserted.
func (w Docs) Document(id int) (title string, paragraphs []string) {
	r := w.rng("doc", id, 0)
	title = sentence(r, 3, 6)
	title = strings.TrimSuffix(title, ".")
	paragraphs = make([]string, w.paragraphs())
	for i := range paragraphs {
		paragraphs[i] = paragraph(r)
	}
	return title, paragraphs
}

// Body joins paragraphs as the body column holds them.
func Body(paragraphs []string) string { return strings.Join(paragraphs, "\n\n") }

// Insert inserts rows first .. first+n-1, 100 per statement.
func (w Docs) Insert(ctx context.Context, db DB, first, n int) error {
	const per = 100
	for start := first; start < first+n; start += per {
		end := min(start+per, first+n)
		var sb strings.Builder
		args := make([]any, 0, 4*(end-start))
		fmt.Fprintf(&sb, "INSERT INTO %s (id, title, body, author, views) VALUES ", w.table())
		for id := start; id < end; id++ {
			title, paras := w.Document(id)
			if id > start {
				sb.WriteString(", ")
			}
			k := len(args)
			fmt.Fprintf(&sb, "($%d, $%d, $%d, $%d, 0)", k+1, k+2, k+3, k+4)
			args = append(args, id, title, Body(paras), authors[id%len(authors)])
		}
		if _, err := db.Exec(ctx, sb.String(), args...); err != nil {
			return fmt.Errorf("workload: insert rows %d..%d: %w", start, end-1, err)
		}
	}
	return nil
}

// Update kinds.
const (
	EditParagraph = "edit_paragraph" // one paragraph of the body replaced
	Metadata      = "metadata"       // views changed: properties only
	Untracked     = "untracked"      // note changed: not indexed at all
)

// Change is one update Updates made.
type Change struct {
	ID         int
	Kind       string
	Paragraph  int      // EditParagraph: which one
	Paragraphs []string // the body's paragraphs after the change
}

// Updates makes n single-row updates (each its own transaction) of rows
// 0 .. rows-1, chosen at random: a share editFraction replaces one
// paragraph of the body with a new one; the others touch no template
// column, half of them changing views (metadata) and half the note. Rows
// keep their current bodies between calls only if bodies holds them:
// pass the same map to every call (nil starts from the inserted ones).
func (w Docs) Updates(ctx context.Context, db DB, rows, n int, editFraction float64, bodies map[int][]string) ([]Change, error) {
	if bodies == nil {
		bodies = map[int][]string{}
	}
	r := w.rng("updates", rows, n)
	out := make([]Change, 0, n)
	for i := 0; i < n; i++ {
		id := r.IntN(rows)
		c := Change{ID: id}
		paras, ok := bodies[id]
		if !ok {
			_, paras = w.Document(id)
		}
		c.Paragraphs = paras
		var err error
		switch x := r.Float64(); {
		case x < editFraction:
			paras = append([]string(nil), paras...)
			c.Kind, c.Paragraph = EditParagraph, r.IntN(len(paras))
			paras[c.Paragraph] = paragraph(r)
			bodies[id], c.Paragraphs = paras, paras
			_, err = db.Exec(ctx, fmt.Sprintf("UPDATE %s SET body = $1 WHERE id = $2", w.table()), Body(paras), id)
		case x < editFraction+(1-editFraction)/2:
			c.Kind = Metadata
			_, err = db.Exec(ctx, fmt.Sprintf("UPDATE %s SET views = views + 1 WHERE id = $1", w.table()), id)
		default:
			c.Kind = Untracked
			_, err = db.Exec(ctx, fmt.Sprintf("UPDATE %s SET note = $1 WHERE id = $2", w.table()), fmt.Sprintf("note %d", i), id)
		}
		if err != nil {
			return out, fmt.Errorf("workload: update %d of row %d: %w", i, id, err)
		}
		out = append(out, c)
	}
	return out, nil
}

var authors = []string{"ann", "bob", "cyd", "dee", "eve", "fox"}

// words are common English words of one token each (cl100k_base, with the
// leading space), so that sentence lengths in words and tokens agree.
var words = strings.Fields(`time year people way day man thing woman life child world school state family
student group country problem hand part place case week company system program question work government
number night point home water room mother area money story fact month lot right study book eye job word
business issue side kind head house service friend father power hour game line end member law car city
community name president team minute idea kid body information back parent face others level office door
health person art war history party result change morning reason research girl guy moment air teacher force
education good new first last long great little own other old right big high different small large next
early young important few public bad same able make know think take see come want look use find give tell
work call try ask need feel become leave put mean keep let begin seem help talk turn start show hear play
run move like live believe hold bring happen write provide sit stand lose pay meet include continue set learn
lead understand watch follow stop create speak read allow add spend grow open walk win offer remember love
consider appear buy wait serve die send expect build stay fall cut reach kill remain`)

func sentence(r *rand.Rand, minWords, maxWords int) string {
	n := minWords + r.IntN(maxWords-minWords+1)
	ws := make([]string, n)
	for i := range ws {
		ws[i] = words[r.IntN(len(words))]
	}
	ws[0] = strings.ToUpper(ws[0][:1]) + ws[0][1:]
	return strings.Join(ws, " ") + "."
}

func paragraph(r *rand.Rand) string {
	n := 3 + r.IntN(2)
	ss := make([]string, n)
	budget := 32 + r.IntN(5) // words in the paragraph, about as many tokens
	for i := range ss {
		left := n - i
		w := budget / left
		ss[i] = sentence(r, max(w-1, 4), w+1)
		budget -= strings.Count(ss[i], " ") + 1
	}
	return strings.Join(ss, " ")
}
