package embedding

import (
	"context"
	"fmt"
	"math"
	"unicode"
	"unicode/utf8"
)

// HashEmbedder is the built-in, offline embedding provider (provider: hash).
//
// It is lexical, not semantic: texts that share words, word pairs and
// spellings land close together, but synonyms, paraphrases and translations
// do not ("car" is no closer to "automobile" than to "banana"). Use it for
// keyword-like similarity, tests and air-gapped setups; use a real model for
// meaning.
//
// A text's features are its lower-cased words (maximal runs of Unicode
// letters, digits and combining marks), the character 3-grams of each word
// with boundary markers ("<ca", "cat", "at>"), and adjacent word pairs. Each
// distinct feature, weighted 1+ln(count) times its group weight (words 1,
// 3-grams 0.5, pairs 0.5), is hashed with 64-bit FNV-1a into one of the
// dimensions with a sign taken from the hash (feature hashing); the vector
// is then scaled to unit length. A text with no features (empty, or only
// punctuation and spaces) gets the fixed unit vector (1, 0, 0, ...), so
// every vector has length 1 and none is NaN or all zeros.
//
// It is deterministic (the same text always gives the same vector, bit for
// bit) and safe for concurrent use.
type HashEmbedder struct {
	dims int
}

// NewHashEmbedder returns a hash embedder producing vectors of the given
// length. It panics if dimensions < 1 (configuration validation rejects
// such values before this is reached).
func NewHashEmbedder(dimensions int) *HashEmbedder {
	if dimensions < 1 {
		panic(fmt.Sprintf("transform: hash embedder dimensions must be positive, got %d", dimensions))
	}
	return &HashEmbedder{dims: dimensions}
}

// ModelID is "hash/v1/<dimensions>".
func (e *HashEmbedder) ModelID() string { return fmt.Sprintf("hash/v1/%d", e.dims) }

// Dimensions returns the vector length.
func (e *HashEmbedder) Dimensions() int { return e.dims }

// Embed returns one unit vector per text, in order.
func (e *HashEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	st := &embedState{acc: make([]float64, e.dims), index: map[uint64]int32{}}
	for i, t := range texts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out[i] = e.embed(t, st)
	}
	return out, nil
}

// Feature groups, hashed with distinct prefixes so that a word and a 3-gram
// with the same letters are different features.
const (
	groupWord   byte = 'w'
	groupGram   byte = 'g'
	groupBigram byte = 'b'
)

func groupWeight(g byte) float64 {
	if g == groupWord {
		return 1
	}
	return 0.5
}

const (
	fnvOffset uint64 = 14695981039346656037
	fnvPrime  uint64 = 1099511628211
)

func fnvBytes(h uint64, s []byte) uint64 {
	for _, c := range s {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func fnvByte(h uint64, b byte) uint64 {
	h ^= uint64(b)
	return h * fnvPrime
}

type feature struct {
	hash  uint64
	group byte
}

// embedState is scratch space reused across the texts of one Embed call.
type embedState struct {
	acc []float64
	// index maps a feature's hash to its position in feats. The hash
	// alone identifies a feature: each group hashes with its own prefix
	// byte, and a 64-bit map key is several times cheaper than a struct.
	index  map[uint64]int32
	feats  []feature // distinct features in first-seen order
	counts []int32
	padded []byte
	lower  []byte   // the text's words, lower-cased, back to back
	words  []string // substrings of lower
}

func (st *embedState) add(f feature) {
	if i, ok := st.index[f.hash]; ok {
		st.counts[i]++
		return
	}
	st.index[f.hash] = int32(len(st.feats))
	st.feats = append(st.feats, f)
	st.counts = append(st.counts, 1)
}

func (e *HashEmbedder) embed(text string, st *embedState) []float32 {
	clear(st.acc)
	clear(st.index)
	st.feats, st.counts = st.feats[:0], st.counts[:0]

	words := st.lowerWords(text)
	for i, w := range words {
		st.add(feature{fnvString(fnvByte(fnvOffset, groupWord), w), groupWord})
		// Character 3-grams of "<word>".
		p := append(append(append(st.padded[:0], '<'), w...), '>')
		st.padded = p
		if isASCII(w) {
			for j := 0; j+3 <= len(p); j++ {
				st.add(feature{fnvBytes(fnvByte(fnvOffset, groupGram), p[j:j+3]), groupGram})
			}
		} else {
			var starts [4]int // rune starts of the current 3-gram and the next rune
			n := 0
			for j := 0; j < len(p); {
				_, size := utf8.DecodeRune(p[j:])
				if n < 3 {
					starts[n] = j
					n++
				} else {
					st.add(feature{fnvBytes(fnvByte(fnvOffset, groupGram), p[starts[0]:j]), groupGram})
					starts[0], starts[1], starts[2] = starts[1], starts[2], j
				}
				j += size
			}
			st.add(feature{fnvBytes(fnvByte(fnvOffset, groupGram), p[starts[0]:]), groupGram})
		}
		if i > 0 {
			h := fnvString(fnvByte(fnvOffset, groupBigram), words[i-1])
			h = fnvString(fnvByte(h, ' '), w)
			st.add(feature{h, groupBigram})
		}
	}

	vec := make([]float32, e.dims)
	// Accumulate in first-seen order: the float sums, hence the vector, are
	// bit-for-bit reproducible.
	for i, f := range st.feats {
		m := mix(f.hash)
		sign := 1.0
		if m>>63 == 1 {
			sign = -1
		}
		st.acc[m%uint64(e.dims)] += sign * (1 + logCount(st.counts[i])) * groupWeight(f.group)
	}
	var norm float64
	for _, x := range st.acc {
		norm += x * x
	}
	if norm == 0 {
		// No features, or (with very few dimensions) features that cancel.
		vec[0] = 1
		return vec
	}
	norm = math.Sqrt(norm)
	for i, x := range st.acc {
		vec[i] = float32(x / norm)
	}
	return vec
}

// logCounts holds ln(n) for the counts most features have.
var logCounts = func() (t [64]float64) {
	for i := 1; i < len(t); i++ {
		t[i] = math.Log(float64(i))
	}
	return t
}()

func logCount(n int32) float64 {
	if int(n) < len(logCounts) {
		return logCounts[n]
	}
	return math.Log(float64(n))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// mix is a 64-bit finalizer (splitmix64) spreading FNV's low-entropy bits
// over the whole word before taking the bucket and the sign.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// lowerWords returns the lower-cased words of text: maximal runs of
// letters, digits and combining marks. The words share one buffer, reused
// by the next text.
func (st *embedState) lowerWords(text string) []string {
	buf := st.lower[:0]
	var ends []int // end offset in buf of each word
	inWord := false
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case 'a' <= c && c <= 'z' || '0' <= c && c <= '9':
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			default:
				if inWord {
					ends = append(ends, len(buf))
					inWord = false
				}
				continue
			}
			buf = append(buf, c)
			inWord = true
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		i += size
		if unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsNumber(r) || (inWord && unicode.IsMark(r)) {
			buf = utf8.AppendRune(buf, unicode.ToLower(r))
			inWord = true
			continue
		}
		if inWord {
			ends = append(ends, len(buf))
			inWord = false
		}
	}
	if inWord {
		ends = append(ends, len(buf))
	}
	st.lower = buf
	// One string for all words: the substrings below share it.
	all := string(buf)
	words := st.words[:0]
	start := 0
	for _, end := range ends {
		words = append(words, all[start:end])
		start = end
	}
	st.words = words
	return words
}
