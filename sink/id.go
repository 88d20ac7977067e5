package sink

import (
	"crypto/sha1"
	"encoding/hex"
	"hash"
	"strconv"

	"github.com/go-openapi/strfmt"
	"github.com/google/uuid"
)

// Namespace is the UUIDv5 namespace of object IDs. It never changes: every
// object ID ever written depends on it.
var Namespace = uuid.MustParse("6da1f329-8a10-541d-822f-517b3d30cd35")

// ObjectID is the deterministic ID of one chunk of one row: UUIDv5 in
// Namespace over "collection/source_table/source_key/chunk_index".
func ObjectID(collection, sourceTable, sourceKey string, chunkIndex int) strfmt.UUID {
	var g idGen
	return g.id(collection, sourceTable, sourceKey, chunkIndex)
}

// idGen computes object IDs reusing its hash and buffer.
type idGen struct {
	h   hash.Hash
	buf []byte
	sum [sha1.Size]byte
}

func (g *idGen) id(collection, sourceTable, sourceKey string, chunkIndex int) strfmt.UUID {
	if g.h == nil {
		g.h = sha1.New()
	}
	b := g.buf[:0]
	b = append(b, collection...)
	b = append(b, '/')
	b = append(b, sourceTable...)
	b = append(b, '/')
	b = append(b, sourceKey...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(chunkIndex), 10)
	g.buf = b

	g.h.Reset()
	g.h.Write(Namespace[:])
	g.h.Write(b)
	s := g.h.Sum(g.sum[:0])
	var u [16]byte
	copy(u[:], s)
	u[6] = (u[6] & 0x0f) | 0x50 // version 5
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 4122 variant

	var out [36]byte
	hex.Encode(out[0:8], u[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], u[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], u[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], u[8:10])
	out[23] = '-'
	hex.Encode(out[24:], u[10:])
	return strfmt.UUID(out[:])
}
