package embedding

import (
	"context"
	"math"
	"strings"
	"testing"
)

// TestHashEmbedderVectorsAreStable pins the vectors of provider hash, bit
// for bit: its model ID (hash/v1/N) says which vectors an index holds, so a
// change of the algorithm, or of the float summation order, would mix two
// embeddings in one collection without anything noticing. A deliberate
// change needs a new model ID.
func TestHashEmbedderVectorsAreStable(t *testing.T) {
	for _, tc := range []struct {
		dims int
		text string
		want uint64 // FNV-1a over the vector's float32 bits, little-endian
	}{
		{384, "PostgreSQL logical replication streams changes into the vector index.", 0xaa8ed0b9813c16d4},
		{256, "PostgreSQL logical replication into Weaviate, with ümlauts and 東京 and 😀; repeated repeated words.", 0x27783af9f62e748a},
		{384, "ÉCOLE Ǆemal straße İstanbul ΣΊΣΥΦΟΣ a\u0301b \u0301lead 123 ٣٤ x", 0xa746e32b8113c1aa},
		{8, "tiny tiny dims with cancelling features", 0x757bb859265a13c6},
		{384, "", 0xb3897cefec35a218},
		{384, "... !!! ---", 0xb3897cefec35a218},
		{1536, "one", 0x80b5bec68111090e},
		{384, strings.Repeat("PostgreSQL logical replication streams changes into the vector index. ", 28), 0x4af81a17f176caa5},
	} {
		vs, err := NewHashEmbedder(tc.dims).Embed(context.Background(), []string{tc.text})
		if err != nil {
			t.Fatal(err)
		}
		h := fnvOffset
		for _, x := range vs[0] {
			b := math.Float32bits(x)
			for i := 0; i < 4; i++ {
				h = fnvByte(h, byte(b>>(8*i)))
			}
		}
		if h != tc.want {
			t.Errorf("%d dims, %q: vector digest %#016x, want %#016x", tc.dims, tc.text, h, tc.want)
		}
	}
}
