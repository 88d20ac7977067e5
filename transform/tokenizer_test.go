package transform

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

var (
	refOnce sync.Once
	refEnc  *tiktoken.Tiktoken
	refErr  error
)

// reference returns tiktoken-go's cl100k_base encoder (offline), the oracle
// the tokenizer is checked against.
func reference(t testing.TB) *tiktoken.Tiktoken {
	t.Helper()
	refOnce.Do(func() {
		tiktoken.SetBpeLoader(tiktoken_loader.NewOfflineLoader())
		refEnc, refErr = tiktoken.GetEncoding("cl100k_base")
	})
	if refErr != nil {
		t.Fatal(refErr)
	}
	return refEnc
}

var tokenizerCorpus = []string{
	"",
	"a",
	"hello world",
	"Hello, World! It's a test. We're here; they'll go, I'd say, you've seen, I'm ok.",
	"IT'S WE'RE THEY'LL I'D YOU'VE I'M DON'T 'S",
	"'sa 'Ll 'rE ''s ' s",
	"  leading and trailing  ",
	"tabs\tand\nnewlines\r\n\r\nand   \n  spaces\n\n\n   x",
	"numbers 1 12 123 1234 12345 3.14159 -42 1e10 ١٢٣٤",
	"東京は日本の首都です。今日は良い天気ですね！本当に？",
	"emoji 😀😃😄 family 👨‍👩‍👧‍👦 flags 🇫🇷🇩🇪 keycap 1️⃣",
	"Ünïcödé àccents, ß, Ωμέγα, русский текст, עברית, العربية, हिन्दी",
	"<|endoftext|> special <|fim_prefix|> markers",
	"==================================================================================",
	strings.Repeat("a", 300),
	strings.Repeat(" ", 200) + "x",
	strings.Repeat("ab", 150) + "\n",
	"code: func main() { fmt.Println(\"hi\") }\n\tif x != nil {\n\t\treturn err\n\t}\n",
	"url https://example.com/path?query=1&b=2#frag mail a.b@example.org",
	"\u00a0nbsp\u3000ideographic\u2028line\u2029para\u0085nel\u000bvt\u000cff",
	"mixed\r\rcarriage\r \n returns",
	"invalid \xff\xfe bytes \xc3 and \xe2\x82 cut",
	"\x80\x80\x80abc\xff",
	"'\xff",
	" \xff",
	"a\u0301e\u0301 combining marks",
	"Ⅻ roman ½ fractions ² superscripts",
}

func TestTokenizerMatchesTiktoken(t *testing.T) {
	ref := reference(t)
	tok := mustCL100k()
	for _, s := range tokenizerCorpus {
		want := ref.EncodeOrdinary(s)
		got := tok.tokens(s)
		if !slices.Equal(got, want) {
			t.Errorf("tokens(%q)\n got %v\nwant %v", s, got, want)
		}
		if n := CountTokens(s); n != len(want) {
			t.Errorf("CountTokens(%q) = %d, want %d", s, n, len(want))
		}
		ends := tok.tokenEnds(s, nil)
		if len(ends) != len(want) {
			t.Errorf("tokenEnds(%q): %d tokens, want %d", s, len(ends), len(want))
		}
		if len(ends) > 0 && ends[len(ends)-1] != len(s) {
			t.Errorf("tokenEnds(%q) ends at %d, want %d", s, ends[len(ends)-1], len(s))
		}
		if !slices.IsSorted(ends) {
			t.Errorf("tokenEnds(%q) not sorted: %v", s, ends)
		}
		if utf8.ValidString(s) {
			// For valid text each token's bytes are its text.
			prev := 0
			for i, e := range ends {
				if id := tok.ranks[s[prev:e]]; id != want[i] {
					t.Errorf("tokenEnds(%q): token %d is %q (id %d), want id %d", s, i, s[prev:e], id, want[i])
				}
				prev = e
			}
		}
	}
}

func TestHeapMergeMatchesScan(t *testing.T) {
	tok := mustCL100k()
	for _, s := range []string{
		strings.Repeat("a", 500),
		strings.Repeat("=-", 300),
		strings.Repeat("abcdefghijklmnopqrstuvwxyz", 20),
		strings.Repeat("😀", 100),
		"Pneumonoultramicroscopicsilicovolcanoconiosis" + strings.Repeat("x", 100),
	} {
		var m1, m2 merger
		a := slices.Clone(m1.splitScan(tok.ranks, s))
		b := slices.Clone(m2.splitHeap(tok.ranks, s))
		if !slices.Equal(a, b) {
			t.Errorf("%q: scan %v heap %v", s, a, b)
		}
	}
}

func FuzzTokenizer(f *testing.F) {
	for _, s := range tokenizerCorpus {
		f.Add(s)
	}
	ref := reference(f)
	tok := mustCL100k()
	f.Fuzz(func(t *testing.T, s string) {
		want := ref.EncodeOrdinary(s)
		got := tok.tokens(s)
		if !slices.Equal(got, want) {
			t.Fatalf("tokens(%q)\n got %v\nwant %v", s, got, want)
		}
		if n := tok.count(s); n != len(want) {
			t.Fatalf("count(%q) = %d, want %d", s, n, len(want))
		}
		if ends := tok.tokenEnds(s, nil); len(ends) != len(want) || (len(ends) > 0 && ends[len(ends)-1] != len(s)) {
			t.Fatalf("tokenEnds(%q) = %v", s, ends)
		}
	})
}

func TestCountTokensConcurrent(t *testing.T) {
	text := strings.Repeat("The quick brown fox jumps over the lazy dog. 東京 😀\n", 50)
	want := CountTokens(text)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if n := CountTokens(text); n != want {
					t.Errorf("CountTokens = %d, want %d", n, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestCountTokensPathologicalIsFast(t *testing.T) {
	// One 200 KB piece: tiktoken's quadratic merge would take minutes.
	s := strings.Repeat("a", 200_000)
	if n := CountTokens(s); n == 0 {
		t.Fatal("no tokens")
	}
}

func BenchmarkCountTokens(b *testing.B) {
	text := strings.Repeat("The quick brown fox jumps over the lazy dog. 東京は日本の首都です。😀\n\n", 1500)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		CountTokens(text)
	}
}

func FuzzMerge(f *testing.F) {
	f.Add(strings.Repeat("a", 100))
	f.Add(strings.Repeat("ab=", 40))
	f.Add("Pneumonoultramicroscopicsilicovolcanoconiosis")
	tok := mustCL100k()
	f.Fuzz(func(t *testing.T, piece string) {
		if len(piece) < 2 {
			return
		}
		var m1, m2 merger
		a := slices.Clone(m1.splitScan(tok.ranks, piece))
		b := m2.splitHeap(tok.ranks, piece)
		if !slices.Equal(a, b) {
			t.Fatalf("%q: scan %v heap %v", piece, a, b)
		}
	})
}
