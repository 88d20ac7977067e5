package transform

import (
	"fmt"
	"sort"
	"unicode"
	"unicode/utf8"
)

// MinChunkTokens is the smallest accepted maxTokens: any single character
// encodes to at most 4 tokens, so every chunk can hold at least one.
const MinChunkTokens = 4

// Chunker splits rendered documents into pieces of at most maxTokens
// cl100k_base tokens. It is immutable and safe for concurrent use.
//
// Split rules:
//
//   - A text of at most maxTokens tokens is one chunk, the empty text
//     included (a row always has at least one object).
//   - A longer text is cut greedily from the front. Each cut goes after a
//     natural boundary, preferring in order: a paragraph break (a run of
//     whitespace holding two or more line breaks), a line break, a sentence
//     end (".", "!" or "?" followed by whitespace, optionally with a closing
//     quote or bracket between; or CJK 。！？), then any whitespace. The
//     whitespace stays at the end of the chunk it follows, so the next chunk
//     starts with text. A boundary is used only if it leaves the chunk at
//     least half of its token budget, so a short title never becomes a chunk
//     of its own; if no boundary qualifies, the last whitespace in the window
//     is used; if there is none, the cut is at the last token boundary that
//     fits (never inside a multi-byte character).
//   - Every chunk, encoded on its own, has at most maxTokens tokens.
//   - With overlap == 0 the chunks concatenate to exactly the input.
//   - With overlap > 0, every chunk after the first begins with the last
//     `overlap` tokens of the previous chunk, counted in the tokenization of
//     the whole text (a partly covered token at the end counts as one), its
//     start moved forward to a character boundary and never before the
//     previous chunk's own start; the chunk then continues exactly where the
//     previous one ended. Dropping that prefix from every chunk but the first
//     yields the input again. The overlap counts against maxTokens.
type Chunker struct {
	maxTokens int
	overlap   int
	tok       *tokenizer
}

// NewChunker returns a chunker for chunks of at most maxTokens tokens, with
// neighbouring chunks sharing overlap tokens. maxTokens must be at least
// MinChunkTokens and overlap between 0 and maxTokens/2.
func NewChunker(maxTokens, overlap int) (*Chunker, error) {
	if maxTokens < MinChunkTokens {
		return nil, fmt.Errorf("max tokens must be at least %d, got %d", MinChunkTokens, maxTokens)
	}
	if overlap < 0 || overlap >= maxTokens {
		return nil, fmt.Errorf("overlap must be at least 0 and less than max tokens (%d), got %d", maxTokens, overlap)
	}
	tok, err := cl100k()
	if err != nil {
		return nil, err
	}
	return &Chunker{maxTokens: maxTokens, overlap: overlap, tok: tok}, nil
}

// MaxTokens returns the chunk size limit.
func (c *Chunker) MaxTokens() int { return c.maxTokens }

// Overlap returns the number of tokens neighbouring chunks share.
func (c *Chunker) Overlap() int { return c.overlap }

// Split cuts text into chunks following the rules on Chunker. It always
// returns at least one chunk.
func (c *Chunker) Split(text string) []string {
	spans := c.spans(text)
	out := make([]string, len(spans))
	for i, sp := range spans {
		out[i] = text[sp.start:sp.end]
	}
	return out
}

// span is one chunk: text[start:end], of which text[start:body] repeats the
// end of the previous chunk (overlap) and text[body:end] is new.
type span struct{ start, body, end int }

func (c *Chunker) spans(text string) []span {
	if text == "" {
		return []span{{}}
	}
	ends := c.tok.tokenEnds(text, nil)
	if len(ends) <= c.maxTokens {
		return []span{{0, 0, len(text)}}
	}
	ntok := len(ends)
	// tokAt returns the index of the token holding byte p.
	tokAt := func(p int) int {
		return sort.Search(ntok, func(i int) bool { return ends[i] > p })
	}
	// endAfter returns where the k-th token counted from the one holding
	// byte p ends (k >= 1), or len(text).
	endAfter := func(p, k int) int {
		i := tokAt(p) + k - 1
		if i >= ntok {
			return len(text)
		}
		return ends[i]
	}

	out := make([]span, 0, 2*ntok/c.maxTokens+1)
	start, body := 0, 0
	for body < len(text) {
		limit := c.maxTokens
		var end int
		for {
			hi := endAfter(start, limit)
			if hi <= body {
				// The overlap alone fills the budget: drop it.
				start, limit = body, c.maxTokens
				continue
			}
			end = c.cut(text, body, hi, endAfter, limit-c.tokensBetween(tokAt, start, body))
			n := c.tok.count(text[start:end])
			if n <= c.maxTokens {
				break
			}
			// Encoded on its own the chunk came out longer than the tokens
			// it spans in the whole text (pieces re-split at its edges).
			if limit > 1 {
				limit = max(1, limit-(n-c.maxTokens))
				continue
			}
			if start < body {
				start, limit = body, c.maxTokens
				continue
			}
			// A single character always fits (maxTokens >= 4).
			_, w := utf8.DecodeRuneInString(text[body:])
			end = body + w
			break
		}
		out = append(out, span{start, body, end})
		next := end
		if c.overlap > 0 && next < len(text) {
			k := tokAt(end-1) - c.overlap
			s := 0
			if k >= 0 {
				s = ends[k]
			}
			s = max(runeCeil(text, s), start)
			if s < next {
				start = s
			} else {
				start = next
			}
		} else {
			start = next
		}
		body = next
	}
	return out
}

// tokensBetween returns the number of tokens touched by text[a:b].
func (c *Chunker) tokensBetween(tokAt func(int) int, a, b int) int {
	if b <= a {
		return 0
	}
	return tokAt(b-1) - tokAt(a) + 1
}

// Boundary levels, best first.
const (
	levelParagraph = iota
	levelLine
	levelSentence
	levelSpace
	levelCount
)

// cut chooses where the chunk whose new text starts at body ends: a position
// in (body, hi]. hi == len(text) takes the rest. budget is the number of
// tokens the new text may use (for the half-budget rule).
func (c *Chunker) cut(text string, body, hi int, endAfter func(p, k int) int, budget int) int {
	if hi >= len(text) {
		return len(text)
	}
	floor := body
	if budget >= 2 {
		floor = endAfter(body, budget/2)
	}
	var last [levelCount]int // last boundary of each level at or after floor
	lastAny := -1            // last boundary of any level after body
	for i := range last {
		last[i] = -1
	}
	mark := func(p, level int) {
		if p <= body || p > hi {
			return
		}
		lastAny = p
		if p >= floor {
			last[level] = p
		}
	}

	// Scan runes in [body, hi]; a boundary is the end of a whitespace run
	// (the position of the first non-space rune after it), or the position
	// after a CJK sentence end not followed by whitespace.
	inSpace := false
	newlines := 0
	crPending := false
	var prev1, prev2 rune // last two non-space runes before the run
	for i := body; i <= hi && i < len(text); {
		r, w := utf8.DecodeRuneInString(text[i:])
		if unicode.IsSpace(r) {
			if !inSpace {
				inSpace, newlines, crPending = true, 0, false
			}
			switch r {
			case '\n':
				newlines++
				crPending = false
			case '\r':
				if crPending {
					newlines++
				}
				crPending = true
			default:
				if crPending {
					newlines++
					crPending = false
				}
			}
			i += w
			continue
		}
		if inSpace {
			if crPending {
				newlines++
			}
			level := levelSpace
			switch {
			case newlines >= 2:
				level = levelParagraph
			case newlines == 1:
				level = levelLine
			case sentenceEnd(prev1, prev2):
				level = levelSentence
			}
			mark(i, level)
			inSpace = false
		}
		if isCJKSentenceEnd(r) && i+w < len(text) {
			if r2, _ := utf8.DecodeRuneInString(text[i+w:]); !unicode.IsSpace(r2) {
				mark(i+w, levelSentence)
			}
		}
		prev2, prev1 = prev1, r
		i += w
	}

	for _, p := range last {
		if p > 0 {
			return p
		}
	}
	if lastAny > 0 {
		return lastAny
	}
	// Token fallback: hi is a token end; step back to a character boundary.
	if p := runeFloor(text, hi); p > body {
		return p
	}
	_, w := utf8.DecodeRuneInString(text[body:])
	return body + w
}

// sentenceEnd reports whether the runes before a whitespace run end a
// sentence: ".", "!" or "?", optionally followed by one closing quote or
// bracket.
func sentenceEnd(last, before rune) bool {
	if isSentencePunct(last) {
		return true
	}
	switch last {
	case '"', '\'', ')', ']', '\u201d', '\u2019', '\u00bb':
		return isSentencePunct(before)
	}
	return false
}

func isSentencePunct(r rune) bool {
	return r == '.' || r == '!' || r == '?' || r == '\u2026' || isCJKSentenceEnd(r)
}

func isCJKSentenceEnd(r rune) bool {
	return r == '。' || r == '！' || r == '？'
}

// runeFloor returns the largest position <= p that does not split a valid
// multi-byte character.
func runeFloor(s string, p int) int {
	if p <= 0 || p >= len(s) {
		return p
	}
	for back := 1; back <= utf8.UTFMax-1 && p-back >= 0; back++ {
		q := p - back
		if utf8.RuneStart(s[q]) {
			r, w := utf8.DecodeRuneInString(s[q:])
			if !(r == utf8.RuneError && w == 1) && q+w > p {
				return q
			}
			break
		}
	}
	return p
}

// runeCeil returns the smallest position >= p that does not split a valid
// multi-byte character.
func runeCeil(s string, p int) int {
	q := runeFloor(s, p)
	if q == p {
		return p
	}
	_, w := utf8.DecodeRuneInString(s[q:])
	return q + w
}
