package transform

import (
	"errors"
	"fmt"
	"sync"
	"unicode"
	"unicode/utf8"

	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// cl100kURL names the cl100k_base rank file. The offline loader resolves it
// to the copy embedded in the binary: nothing is ever downloaded.
const cl100kURL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"

// heapMergeMin is the piece length (bytes) from which BPE merging uses a
// heap instead of the quadratic scan: long runs (base64 blobs, rows of "=",
// long whitespace) must not make a row take minutes to tokenize.
const heapMergeMin = 64

var (
	cl100kOnce  sync.Once
	cl100kTok   *tokenizer
	cl100kError error
)

// cl100k returns the shared cl100k_base tokenizer, loading the embedded rank
// table on first use. The tokenizer is immutable and safe for concurrent use.
func cl100k() (*tokenizer, error) {
	cl100kOnce.Do(func() {
		ranks, err := tiktoken_loader.NewOfflineLoader().LoadTiktokenBpe(cl100kURL)
		if err != nil {
			cl100kError = fmt.Errorf("load cl100k_base token ranks: %w", err)
			return
		}
		if len(ranks) == 0 {
			cl100kError = errors.New("load cl100k_base token ranks: empty table")
			return
		}
		cl100kTok = &tokenizer{ranks: ranks}
	})
	return cl100kTok, cl100kError
}

func mustCL100k() *tokenizer {
	t, err := cl100k()
	if err != nil {
		// The table is embedded in the binary; failing to read it means a
		// broken build, not a runtime condition.
		panic(err)
	}
	return t
}

// CountTokens returns the number of cl100k_base tokens of text (ordinary
// encoding: special-token markers such as <|endoftext|> count as plain
// text). It panics only if the embedded token table is unreadable, which
// NewChunker reports as an error first.
func CountTokens(text string) int {
	return mustCL100k().count(text)
}

// tokenizer is a byte-level BPE encoder for cl100k_base. It produces the same
// tokens as tiktoken (and tiktoken-go's EncodeOrdinary) but reports where each
// token ends in the input, splits text into pre-token pieces with a scanner
// equivalent to the cl100k_base pattern instead of a backtracking regexp, and
// merges long pieces in O(n log n).
//
// As in tiktoken-go, an invalid UTF-8 byte is treated as U+FFFD.
type tokenizer struct {
	ranks map[string]int
}

// count returns the number of tokens of s.
func (t *tokenizer) count(s string) int {
	n := 0
	var m merger
	pretokenize(s, func(start, end int, valid bool) {
		piece := s[start:end]
		if !valid {
			piece = string([]rune(piece))
		}
		n += m.count(t.ranks, piece)
	})
	return n
}

// tokenEnds appends to ends the offset in s just past each token, in order.
// A token's bytes may end inside a multi-byte character; callers that cut
// text must round to a character boundary.
func (t *tokenizer) tokenEnds(s string, ends []int) []int {
	var m merger
	pretokenize(s, func(start, end int, valid bool) {
		piece := s[start:end]
		if valid {
			for _, b := range m.split(t.ranks, piece) {
				ends = append(ends, start+b)
			}
			return
		}
		conv, orig := convertInvalid(piece)
		for _, b := range m.split(t.ranks, conv) {
			ends = append(ends, start+orig[b])
		}
	})
	return ends
}

// tokens returns the token ids of s (used by tests to compare with
// tiktoken-go).
func (t *tokenizer) tokens(s string) []int {
	var ids []int
	var m merger
	pretokenize(s, func(start, end int, valid bool) {
		piece := s[start:end]
		if !valid {
			piece = string([]rune(piece))
		}
		prev := 0
		for _, b := range m.split(t.ranks, piece) {
			ids = append(ids, t.ranks[piece[prev:b]])
			prev = b
		}
	})
	return ids
}

// convertInvalid replaces each invalid byte of piece by U+FFFD as a []rune
// conversion does, and returns for every offset of the converted string the
// matching offset of piece.
func convertInvalid(piece string) (string, []int) {
	conv := make([]byte, 0, len(piece)+8)
	orig := make([]int, 0, len(piece)+9)
	for i := 0; i < len(piece); {
		r, w := utf8.DecodeRuneInString(piece[i:])
		if r == utf8.RuneError && w == 1 {
			conv = append(conv, "\uFFFD"...)
			orig = append(orig, i, i, i)
		} else {
			conv = append(conv, piece[i:i+w]...)
			for k := 0; k < w; k++ {
				orig = append(orig, i+k)
			}
		}
		i += w
	}
	orig = append(orig, len(piece))
	return string(conv), orig
}

// decodeAt decodes the rune at s[i]; an invalid byte decodes as U+FFFD of
// width 1, exactly as a []rune conversion treats it.
func decodeAt(s string, i int) (rune, int) {
	c := s[i]
	if c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

func isNewline(r rune) bool { return r == '\r' || r == '\n' }

// isOther is [^\s\p{L}\p{N}].
func isOther(r rune) bool {
	return !unicode.IsSpace(r) && !unicode.IsLetter(r) && !unicode.IsNumber(r)
}

// pretokenize splits s into the pieces the cl100k_base pattern
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// matches (leftmost-first alternation, with backtracking, on runes) and calls
// fn for each. valid is false when the piece holds invalid UTF-8.
func pretokenize(s string, fn func(start, end int, valid bool)) {
	n := len(s)
	// runEnd returns the end of the run of runes satisfying f from i.
	runEnd := func(i int, f func(rune) bool) (end int, valid bool) {
		valid = true
		for i < n {
			r, w := decodeAt(s, i)
			if !f(r) {
				break
			}
			if r == utf8.RuneError && w == 1 {
				valid = false
			}
			i += w
		}
		return i, valid
	}
	for i := 0; i < n; {
		r, w := decodeAt(s, i)
		invalid := r == utf8.RuneError && w == 1
		var r2 rune = -1
		w2 := 0
		if i+w < n {
			r2, w2 = decodeAt(s, i+w)
		}
		end := -1
		valid := !invalid

		switch {
		// (?i:'s|'t|'re|'ve|'m|'ll|'d)
		case r == '\'' && r2 >= 0 && contraction(s, i+w, r2, w2) > 0:
			end = i + w + contraction(s, i+w, r2, w2)
			valid = true

		// [^\r\n\p{L}\p{N}]?\p{L}+
		case unicode.IsLetter(r):
			e, v := runEnd(i+w, unicode.IsLetter)
			end, valid = e, v && valid
		case !isNewline(r) && !unicode.IsNumber(r) && r2 >= 0 && unicode.IsLetter(r2):
			e, v := runEnd(i+w+w2, unicode.IsLetter)
			end, valid = e, v && valid

		// \p{N}{1,3}
		case unicode.IsNumber(r):
			end = i + w
			for k := 1; k < 3 && end < n; k++ {
				rr, ww := decodeAt(s, end)
				if !unicode.IsNumber(rr) {
					break
				}
				end += ww
			}

		//  ?[^\s\p{L}\p{N}]+[\r\n]*
		case r == ' ' && r2 >= 0 && isOther(r2):
			e, v := runEnd(i+w, isOther)
			e, _ = runEnd(e, isNewline)
			end, valid = e, v
		case isOther(r):
			e, v := runEnd(i+w, isOther)
			e, _ = runEnd(e, isNewline)
			end, valid = e, v && valid

		default: // whitespace: \s*[\r\n]+ | \s+(?!\S) | \s+
			j := i
			lastNL, lastStart := -1, i
			for j < n {
				rr, ww := decodeAt(s, j)
				if !unicode.IsSpace(rr) {
					break
				}
				if isNewline(rr) {
					lastNL = j
				}
				lastStart = j
				j += ww
			}
			switch {
			case lastNL >= 0:
				end = lastNL + 1
			case j == n:
				end = j
			case lastStart > i:
				end = lastStart
			default:
				end = j
			}
		}
		fn(i, end, valid)
		i = end
	}
}

// contraction returns the byte length after the apostrophe of a contraction
// ('s 't 're 've 'm 'll 'd, any case) starting at s[i] (whose first rune r
// of width w has been decoded), or 0.
func contraction(s string, i int, r rune, w int) int {
	switch unicode.ToLower(r) {
	case 's', 't', 'm', 'd':
		return w
	case 'r', 'v', 'l':
		if i+w >= len(s) {
			return 0
		}
		r2, w2 := decodeAt(s, i+w)
		want := 'e'
		if unicode.ToLower(r) == 'l' {
			want = 'l'
		}
		if unicode.ToLower(r2) == want {
			return w + w2
		}
	}
	return 0
}

// merger holds scratch space for BPE merging of one piece at a time.
type merger struct {
	bounds []int
	out    []int
	ranks  []int
	next   []int
	prev   []int
	heap   mergeHeap
}

// count returns the number of tokens of one piece.
func (m *merger) count(ranks map[string]int, piece string) int {
	if len(piece) <= 1 {
		return len(piece)
	}
	if _, ok := ranks[piece]; ok {
		return 1
	}
	return len(m.split(ranks, piece))
}

// split returns the end offset of each token of piece, using tiktoken's
// merge rule: repeatedly merge the adjacent pair with the lowest rank
// (leftmost on ties). The returned slice is reused by the next call.
func (m *merger) split(ranks map[string]int, piece string) []int {
	m.out = m.out[:0]
	if len(piece) == 0 {
		return m.out
	}
	if _, ok := ranks[piece]; ok || len(piece) == 1 {
		return append(m.out, len(piece))
	}
	if len(piece) >= heapMergeMin {
		return m.splitHeap(ranks, piece)
	}
	return m.splitScan(ranks, piece)
}

const noRank = int(^uint(0) >> 1)

// splitScan is tiktoken's quadratic merge, fastest for short pieces.
func (m *merger) splitScan(ranks map[string]int, piece string) []int {
	n := len(piece)
	b := m.bounds[:0]
	rk := m.ranks[:0]
	for i := 0; i <= n; i++ {
		b = append(b, i)
		rk = append(rk, noRank)
	}
	rankOf := func(i, skip int) int {
		if i+skip+2 < len(b) {
			if r, ok := ranks[piece[b[i]:b[i+skip+2]]]; ok {
				return r
			}
		}
		return noRank
	}
	for i := 0; i < len(b)-2; i++ {
		rk[i] = rankOf(i, 0)
	}
	for len(b) > 1 {
		minRank, minIdx := noRank, -1
		for i := 0; i < len(b)-1; i++ {
			if rk[i] < minRank {
				minRank, minIdx = rk[i], i
			}
		}
		if minIdx < 0 {
			break
		}
		i := minIdx
		rk[i] = rankOf(i, 1)
		if i > 0 {
			rk[i-1] = rankOf(i-1, 1)
		}
		b = append(b[:i+1], b[i+2:]...)
		rk = append(rk[:i+1], rk[i+2:]...)
	}
	m.bounds, m.ranks = b, rk
	m.out = append(m.out, b[1:]...)
	return m.out
}

// splitHeap computes the same merges as splitScan with a linked list of
// boundaries and a min-heap of (rank, position) pairs.
func (m *merger) splitHeap(ranks map[string]int, piece string) []int {
	n := len(piece)
	// Boundaries are byte offsets 0..n; next/prev link the live ones.
	next := growInts(m.next, n+1)
	prev := growInts(m.prev, n+1)
	rk := growInts(m.ranks, n+1)
	for i := 0; i <= n; i++ {
		next[i] = i + 1
		prev[i] = i - 1
		rk[i] = noRank
	}
	// pairRank is the rank of the token that merging the part starting at
	// boundary i with its successor would form.
	pairRank := func(i int) int {
		j := next[i]
		if j > n {
			return noRank
		}
		k := next[j]
		if k > n {
			return noRank
		}
		if r, ok := ranks[piece[i:k]]; ok {
			return r
		}
		return noRank
	}
	h := m.heap[:0]
	for i := 0; i < n; i++ {
		rk[i] = pairRank(i)
		if rk[i] != noRank {
			h.push(mergeItem{rank: rk[i], pos: i})
		}
	}
	for len(h) > 0 {
		it := h.pop()
		i := it.pos
		if rk[i] != it.rank { // stale entry
			continue
		}
		// Merge the part at i with its successor: drop boundary next[i].
		j := next[i]
		next[i] = next[j]
		if next[j] <= n {
			prev[next[j]] = i
		}
		rk[j] = noRank
		rk[i] = pairRank(i)
		if rk[i] != noRank {
			h.push(mergeItem{rank: rk[i], pos: i})
		}
		if p := prev[i]; p >= 0 {
			rk[p] = pairRank(p)
			if rk[p] != noRank {
				h.push(mergeItem{rank: rk[p], pos: p})
			}
		}
	}
	m.heap = h
	m.next, m.prev, m.ranks = next, prev, rk
	for i := next[0]; i <= n; i = next[i] {
		m.out = append(m.out, i)
	}
	return m.out
}

func growInts(s []int, n int) []int {
	if cap(s) < n {
		return make([]int, n)
	}
	return s[:n]
}

type mergeItem struct{ rank, pos int }

func (a mergeItem) less(b mergeItem) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos)
}

// mergeHeap is a binary min-heap ordered by (rank, pos): the lowest rank,
// leftmost on ties, as tiktoken's scan picks it.
type mergeHeap []mergeItem

func (h *mergeHeap) push(it mergeItem) {
	*h = append(*h, it)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s[i].less(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *mergeHeap) pop() mergeItem {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(s) {
			break
		}
		c := l
		if r := l + 1; r < len(s) && s[r].less(s[l]) {
			c = r
		}
		if !s[c].less(s[i]) {
			break
		}
		s[i], s[c] = s[c], s[i]
		i = c
	}
	*h = s
	return top
}

// TruncateTokens returns the longest prefix of text that holds at most n
// cl100k_base tokens of text's own tokenization, cut at a token boundary
// (moved back to a character boundary when a token ends inside one).
func TruncateTokens(text string, n int) string {
	if n <= 0 {
		return ""
	}
	ends := mustCL100k().tokenEnds(text, nil)
	if len(ends) <= n {
		return text
	}
	return text[:runeFloor(text, ends[n-1])]
}
