package embedding

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"time"
)

// Encoding formats of OpenAIConfig.EncodingFormat.
const (
	// EncodingAuto asks for base64 and falls back to float arrays, for
	// good, the first time the provider refuses the parameter.
	EncodingAuto   = "auto"
	EncodingBase64 = "base64" // 4 bytes a value instead of ~10 characters of JSON
	EncodingFloat  = "float"
)

// vector is an embedding as the provider sends it: a JSON array of
// numbers, or (encoding_format base64) a base64 string of little-endian
// float32 values.
type vector []float32

func (v *vector) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return fmt.Errorf("base64 embedding: %w", err)
		}
		if len(raw)%4 != 0 {
			return fmt.Errorf("base64 embedding of %d bytes is not float32 values", len(raw))
		}
		out := make([]float32, len(raw)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		*v = out
		return nil
	}
	var f []float32
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*v = f
	return nil
}

// refusesEncodingFormat reports whether a 400-class answer says the
// provider does not know encoding_format (or base64 for it).
func refusesEncodingFormat(message string) bool {
	m := strings.ToLower(message)
	return strings.Contains(m, "encoding_format") || strings.Contains(m, "base64")
}

// maxAnswerBytes bounds what one answer may be: batchSize vectors of dims
// values as JSON text (up to 24 characters a value) plus the envelope. A
// larger answer is not an embeddings answer to this request.
func maxAnswerBytes(batchSize, dims int) int64 {
	return int64(batchSize)*(int64(dims)*24+512) + 1<<20
}

// newTransport is an HTTP transport for one provider endpoint that keeps
// enough idle connections for every request in flight (the default keeps
// two per host, so a busier client opened a connection per request).
func newTransport(concurrency int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = max(16, 4*concurrency)
	t.MaxIdleConns = max(t.MaxIdleConns, t.MaxIdleConnsPerHost)
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return t
}
