package main

import (
	"math/rand/v2"
	"strconv"
	"strings"
)

// The chunk-reuse workload: long documents (several chunks each), then one
// update per document of which a fixed share leaves the document as it is
// (only a column outside the template changes) and the rest rewrite one
// paragraph.

const (
	longParagraphs     = 14  // paragraphs per document
	longParagraphWords = 130 // words per paragraph: ~2,000 tokens, 4-5 chunks of 512
	noopShare          = 0.7
)

type longDoc struct {
	ID         int64
	Title      string
	Paragraphs []string
}

func (d longDoc) body() string { return strings.Join(d.Paragraphs, "\n\n") }

// text is the rendered document ("{{.title}}\n\n{{.body}}").
func (d longDoc) text() string { return d.Title + "\n\n" + d.body() }

func paragraph(id int64, salt uint64, words int) string {
	r := rand.New(rand.NewPCG(uint64(id), salt))
	var sb strings.Builder
	for i := 0; i < words; i++ {
		if i > 0 {
			if i%16 == 0 {
				sb.WriteString(". ")
			} else {
				sb.WriteByte(' ')
			}
		}
		w := vocabulary[r.IntN(len(vocabulary))]
		if i == 0 || i%16 == 0 {
			w = strings.ToUpper(w[:1]) + w[1:]
		}
		sb.WriteString(w)
	}
	sb.WriteByte('.')
	return sb.String()
}

func makeLongDoc(id int64) longDoc {
	d := longDoc{ID: id, Title: "Long document " + strconv.FormatInt(id, 10)}
	for p := 0; p < longParagraphs; p++ {
		d.Paragraphs = append(d.Paragraphs, paragraph(id, uint64(100+p), longParagraphWords))
	}
	return d
}

// longUpdate is the update of one document: edited reports whether a
// paragraph changed (else the update touches only updated_at).
type longUpdate struct {
	Before, After longDoc
	Edited        bool
	Paragraph     int
}

// makeUpdate decides deterministically, from the id, what the update does.
func makeUpdate(d longDoc) longUpdate {
	r := rand.New(rand.NewPCG(uint64(d.ID), 7))
	u := longUpdate{Before: d, After: d}
	if r.Float64() < noopShare {
		return u
	}
	u.Edited = true
	u.Paragraph = r.IntN(len(d.Paragraphs))
	u.After.Paragraphs = append([]string(nil), d.Paragraphs...)
	u.After.Paragraphs[u.Paragraph] = paragraph(d.ID, 1000+uint64(u.Paragraph), longParagraphWords)
	return u
}
