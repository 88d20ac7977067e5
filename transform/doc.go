// Package transform turns replicated rows into what lands in Weaviate: it
// renders each row's document from the table's template (Renderer), computes
// the content hash that lets unchanged rows be skipped (ContentHash), splits
// documents into token-bounded chunks (Chunker, CountTokens). Turning chunks
// into vectors is package embedding's job. It needs no database and no
// network: tests build connector.Row values by hand.
//
// # Templates
//
// A table's template is a Go text/template executed over a map from column
// name to value ({{.title}}, or {{index . "Body Text"}} for a name that is
// not an identifier), with missingkey=zero. Values follow the contract: text
// as itself; int2/int4/int8 as int64 and float4/float8 as float64, printed
// as Go prints them; bool as bool; timestamp and timestamptz as RFC 3339 in
// UTC (time.RFC3339Nano: fractional seconds only as far as needed; a
// timestamp without time zone is taken as UTC); date, numeric (exact),
// json/jsonb and every type without a natural Go value (uuid, enum, inet,
// cidr, macaddr, interval, money, bit strings, geometric types, ranges, xml,
// domains over these, unknown types) as PostgreSQL's text form; arrays as
// slices of their element values. NULL renders as "". Conversions are chosen
// from the catalog type (a domain converts as its base type); PostgreSQL's
// text form is always the fallback.
//
// NewRenderer checks the template against the table: every column it names
// must exist. Renderer.Columns reports what rendering reads so unchanged
// TOAST values can be fetched before rendering.
//
// # Chunks and tokens
//
// Token counts are cl100k_base, from the rank table embedded in
// github.com/pkoukk/tiktoken-go-loader (never downloaded). The encoder here
// yields the same tokens as tiktoken-go (checked by differential tests) but
// also token offsets, and runs in O(n log n) even on pathological input such
// as one long run of letters. See Chunker for the splitting rules.
package transform
