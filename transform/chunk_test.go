package transform

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func mustChunker(t testing.TB, maxTokens, overlap int) *Chunker {
	t.Helper()
	c, err := NewChunker(maxTokens, overlap)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkChunks verifies the invariants every Split result must hold.
func checkChunks(t testing.TB, c *Chunker, text string) []string {
	t.Helper()
	spans := c.spans(text)
	chunks := c.Split(text)
	if len(chunks) == 0 || len(chunks) != len(spans) {
		t.Fatalf("Split(%q): %d chunks, %d spans", text, len(chunks), len(spans))
	}
	var rebuilt strings.Builder
	for i, sp := range spans {
		ch := chunks[i]
		if n := CountTokens(ch); n > c.maxTokens {
			t.Fatalf("chunk %d of %q has %d tokens > %d: %q", i, text, n, c.maxTokens, ch)
		}
		if text != "" && ch == "" {
			t.Fatalf("chunk %d of %q is empty", i, text)
		}
		if !(sp.start <= sp.body && sp.body < sp.end || text == "") {
			t.Fatalf("chunk %d of %q: bad span %+v", i, text, sp)
		}
		if i == 0 && (sp.start != 0 || sp.body != 0) {
			t.Fatalf("first span %+v", sp)
		}
		if i > 0 {
			prev := spans[i-1]
			if sp.body != prev.end {
				t.Fatalf("chunk %d of %q starts its new text at %d, previous ended at %d", i, text, sp.body, prev.end)
			}
			if sp.start < prev.start {
				t.Fatalf("chunk %d overlap starts before the previous chunk", i)
			}
			if c.overlap == 0 && sp.start != sp.body {
				t.Fatalf("chunk %d overlaps with overlap 0", i)
			}
		}
		if utf8.ValidString(text) && !utf8.ValidString(ch) {
			t.Fatalf("chunk %d of %q splits a character: %q", i, text, ch)
		}
		rebuilt.WriteString(text[sp.body:sp.end])
	}
	if rebuilt.String() != text {
		t.Fatalf("chunks without overlap do not rebuild the text")
	}
	if c.overlap == 0 && strings.Join(chunks, "") != text {
		t.Fatalf("chunks do not concatenate to the text")
	}
	return chunks
}

func TestNewChunkerValidates(t *testing.T) {
	for _, tc := range []struct {
		max, overlap int
		ok           bool
	}{
		{512, 0, true},
		{512, 256, true},
		{4, 0, true},
		{4, 2, true},
		{3, 0, false},
		{0, 0, false},
		{-1, 0, false},
		{512, -1, false},
		{512, 511, true},
		{4, 3, true},
		{512, 512, false},
		{512, 600, false},
	} {
		_, err := NewChunker(tc.max, tc.overlap)
		if (err == nil) != tc.ok {
			t.Errorf("NewChunker(%d, %d) error = %v, want ok=%v", tc.max, tc.overlap, err, tc.ok)
		}
	}
}

func TestSplitShortTextIsOneChunk(t *testing.T) {
	c := mustChunker(t, 8, 0)
	for _, s := range []string{"", "hello", "one two three four five six seven"} {
		if CountTokens(s) > 8 {
			t.Fatalf("test text %q too long", s)
		}
		got := c.Split(s)
		if len(got) != 1 || got[0] != s {
			t.Errorf("Split(%q) = %q, want one chunk", s, got)
		}
	}
	// Exactly at the limit.
	s := strings.TrimSpace(strings.Repeat(" word", 8))
	if n := CountTokens(s); n != 8 {
		t.Fatalf("%q has %d tokens", s, n)
	}
	if got := c.Split(s); len(got) != 1 {
		t.Errorf("text of exactly maxTokens split into %d chunks", len(got))
	}
	if got := c.Split(s + " word"); len(got) != 2 {
		t.Errorf("text of maxTokens+1 split into %d chunks: %q", len(got), got)
	}
}

func TestSplitBoundaryPreference(t *testing.T) {
	sentence := "The quick brown fox jumps over the lazy dog. " // 10 tokens
	for _, tc := range []struct {
		name    string
		text    string
		max     int
		wantEnd string // every chunk but the last ends with this
	}{
		{
			name:    "paragraphs",
			text:    strings.Repeat(strings.Repeat(sentence, 3)+"\n\n", 6),
			max:     70,
			wantEnd: "\n\n",
		},
		{
			name:    "lines",
			text:    strings.Repeat(strings.Repeat(sentence, 3)+"\n", 6),
			max:     70,
			wantEnd: "\n",
		},
		{
			name:    "sentences",
			text:    strings.Repeat(sentence, 20),
			max:     35,
			wantEnd: ". ",
		},
		{
			name:    "sentences with closing quote",
			text:    strings.Repeat(`He said "stop the quick brown fox now." `, 20),
			max:     30,
			wantEnd: `." `,
		},
		{
			name:    "words",
			text:    strings.Repeat("alpha beta gamma delta ", 40),
			max:     25,
			wantEnd: " ",
		},
		{
			name:    "cjk sentences",
			text:    strings.Repeat("東京は日本の首都です。今日は良い天気ですね！", 30),
			max:     40,
			wantEnd: "",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustChunker(t, tc.max, 0)
			chunks := checkChunks(t, c, tc.text)
			if len(chunks) < 2 {
				t.Fatalf("expected several chunks, got %d", len(chunks))
			}
			for i, ch := range chunks[:len(chunks)-1] {
				if tc.wantEnd != "" && !strings.HasSuffix(ch, tc.wantEnd) {
					t.Errorf("chunk %d does not end with %q: %q", i, tc.wantEnd, ch)
				}
				if tc.name == "cjk sentences" && !strings.HasSuffix(ch, "。") && !strings.HasSuffix(ch, "！") {
					t.Errorf("chunk %d does not end at a CJK sentence end: %q", i, ch)
				}
				if n := CountTokens(ch); n < tc.max/2-10 {
					t.Errorf("chunk %d is short (%d tokens): %q", i, n, ch)
				}
			}
		})
	}
}

func TestSplitKeepsTitleWithBody(t *testing.T) {
	// A short title followed by a long paragraph is not a chunk of its own.
	text := "Title\n\n" + strings.Repeat("The quick brown fox jumps over the lazy dog. ", 30)
	chunks := checkChunks(t, mustChunker(t, 100, 0), text)
	if !strings.HasPrefix(chunks[0], "Title\n\nThe quick") {
		t.Errorf("first chunk = %q", chunks[0])
	}
}

func TestSplitNeverCutsACharacter(t *testing.T) {
	for _, text := range []string{
		strings.Repeat("😀", 400),                             // multi-token emoji, no spaces
		strings.Repeat("👨‍👩‍👧‍👦", 100),                       // ZWJ sequences
		strings.Repeat("東京都庁舎", 200),                         // CJK without punctuation
		strings.Repeat("𠜎𠜱𠝹𠱓", 100),                          // rare 4-byte CJK
		strings.Repeat("a", 3000),                            // one long piece
		strings.Repeat("é", 1000) + strings.Repeat("€", 500), // 2- and 3-byte runes
	} {
		for _, max := range []int{4, 5, 7, 16, 64} {
			checkChunks(t, mustChunker(t, max, 0), text)
			checkChunks(t, mustChunker(t, max, max/2), text)
			checkChunks(t, mustChunker(t, max, max-1), text)
		}
	}
}

func TestSplitOverlap(t *testing.T) {
	text := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 60)
	c := mustChunker(t, 50, 10)
	spans := c.spans(text)
	checkChunks(t, c, text)
	if len(spans) < 3 {
		t.Fatalf("got %d chunks", len(spans))
	}
	for i, sp := range spans[1:] {
		prev := spans[i]
		overlap := text[sp.start:sp.body]
		if !strings.HasSuffix(text[prev.start:prev.end], overlap) {
			t.Errorf("chunk %d does not start with the end of chunk %d", i+1, i)
		}
		if n := CountTokens(overlap); n < 9 || n > 11 {
			t.Errorf("chunk %d overlap has %d tokens, want about 10: %q", i+1, n, overlap)
		}
	}
}

func TestSplitInvalidUTF8PassesThrough(t *testing.T) {
	text := strings.Repeat("abc \xff\xfe def\xc3 ", 200)
	checkChunks(t, mustChunker(t, 16, 0), text)
	checkChunks(t, mustChunker(t, 16, 4), text)
}

func TestSplitConcurrent(t *testing.T) {
	c := mustChunker(t, 32, 4)
	text := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 50)
	want := c.Split(text)
	done := make(chan []string)
	for g := 0; g < 4; g++ {
		go func() { done <- c.Split(text) }()
	}
	for g := 0; g < 4; g++ {
		got := <-done
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatal("concurrent Split differs")
		}
	}
}

func FuzzSplit(f *testing.F) {
	seeds := append([]string{
		"Title\n\nBody text. Second sentence! Third? Yes.\nNew line\n\n\nParagraph",
		strings.Repeat("word ", 100),
		strings.Repeat("😀東京 ", 50),
		"a\r\n\r\nb\rc\n \n d",
		"  \n\n  ",
	}, tokenizerCorpus...)
	for i, s := range seeds {
		f.Add(s, uint8(4+i%20), uint8(i%3))
	}
	f.Fuzz(func(t *testing.T, text string, maxTokens, overlap uint8) {
		max := MinChunkTokens + int(maxTokens)%60
		ov := int(overlap) % max
		c := mustChunker(t, max, 0)
		checkChunks(t, c, text)
		checkChunks(t, mustChunker(t, max, ov), text)
	})
}

func BenchmarkSplit(b *testing.B) {
	para := "PostgreSQL logical replication streams every committed change; the indexer renders each row " +
		"into a document, splits it on natural boundaries and embeds the chunks. Mixed scripts too: " +
		"東京は日本の首都です。Emoji 😀 and accents àéîõü.\n\n"
	for _, size := range []int{1 << 10, 100 << 10} {
		text := strings.Repeat(para, size/len(para)+1)[:size]
		text = text[:runeFloor(text, len(text))]
		for _, ov := range []int{0, 64} {
			b.Run(fmt.Sprintf("%dKB/overlap=%d", size>>10, ov), func(b *testing.B) {
				c := mustChunker(b, 256, ov)
				b.SetBytes(int64(len(text)))
				b.ReportAllocs()
				for b.Loop() {
					c.Split(text)
				}
			})
		}
	}
}
