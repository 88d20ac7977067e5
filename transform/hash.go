package transform

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"math"
	"slices"
	"strconv"
	"time"
)

// contentHashDomain versions the hash input layout; changing the layout
// must change it, so that old and new hashes never compare equal by
// accident.
const contentHashDomain = "cdc-indexer content-hash v1"

// ContentHash is the contract's content_hash: hex SHA-256 over the rendered
// document, its metadata values and the embedding model id. Every field is
// length-prefixed (unsigned 64-bit big-endian) so no two different inputs
// frame the same bytes; metadata is hashed in sorted key order, each value
// as a type tag plus a canonical encoding (so int64 1 and float64 1 differ).
// It does not depend on map iteration order.
func ContentHash(text string, metadata map[string]any, modelID string) string {
	h := sha256.New()
	writeField(h, []byte(contentHashDomain))
	writeField(h, []byte(text))
	keys := make([]string, 0, len(metadata))
	for k := range metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(keys)))
	h.Write(n[:])
	var buf []byte
	for _, k := range keys {
		writeField(h, []byte(k))
		buf = appendCanonical(buf[:0], metadata[k])
		writeField(h, buf)
	}
	writeField(h, []byte(modelID))
	return hex.EncodeToString(h.Sum(nil))
}

func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

// appendCanonical appends a type tag and a stable encoding of v.
func appendCanonical(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "nil"...)
	case string:
		return strconv.AppendQuote(append(b, "s:"...), x)
	case bool:
		return strconv.AppendBool(append(b, "b:"...), x)
	case int64:
		return strconv.AppendInt(append(b, "i:"...), x, 10)
	case int:
		return strconv.AppendInt(append(b, "i:"...), int64(x), 10)
	case int32:
		return strconv.AppendInt(append(b, "i:"...), int64(x), 10)
	case float64:
		return appendFloat(append(b, "f:"...), x)
	case float32:
		return appendFloat(append(b, "f:"...), float64(x))
	case time.Time:
		return append(append(b, "t:"...), x.UTC().Format(time.RFC3339Nano)...)
	case []string:
		b = appendLen(append(b, "[s"...), len(x))
		for _, e := range x {
			b = strconv.AppendQuote(append(b, ','), e)
		}
		return append(b, ']')
	case []int64:
		b = appendLen(append(b, "[i"...), len(x))
		for _, e := range x {
			b = strconv.AppendInt(append(b, ','), e, 10)
		}
		return append(b, ']')
	case []float64:
		b = appendLen(append(b, "[f"...), len(x))
		for _, e := range x {
			b = appendFloat(append(b, ','), e)
		}
		return append(b, ']')
	case []bool:
		b = appendLen(append(b, "[b"...), len(x))
		for _, e := range x {
			b = strconv.AppendBool(append(b, ','), e)
		}
		return append(b, ']')
	case []any:
		b = appendLen(append(b, "[a"...), len(x))
		for _, e := range x {
			b = appendCanonical(append(b, ','), e)
		}
		return append(b, ']')
	}
	// Anything else: its type and JSON form (JSON sorts map keys).
	b = append(b, fmt.Sprintf("%T:", v)...)
	if j, err := json.Marshal(v); err == nil {
		return append(b, j...)
	}
	return fmt.Appendf(b, "%#v", v)
}

func appendLen(b []byte, n int) []byte {
	return strconv.AppendInt(append(b, '#'), int64(n), 10)
}

// appendFloat encodes the exact float64 bits' shortest decimal form; NaN
// and infinities get fixed spellings.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}
