package sink

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/cdc-indexer/cdc-indexer/transform"
)

type stringer struct{}

func (stringer) String() string { return "str" }

func TestPropValue(t *testing.T) {
	ts := time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC)
	known := func(k transform.Kind) kindInfo { return kindInfo{kind: k, known: true} }
	cases := []struct {
		name string
		in   any
		ki   kindInfo
		want any
	}{
		{"text", "a", known(transform.KindText), "a"},
		{"int64", int64(5), known(transform.KindInt), int64(5)},
		{"int16 as int", int16(5), known(transform.KindInt), int64(5)},
		{"uint8 as int", uint8(5), known(transform.KindInt), int64(5)},
		{"string as int", "12", known(transform.KindInt), int64(12)},
		{"float32 as number", float32(0.5), known(transform.KindNumber), 0.5},
		{"int as number", 3, known(transform.KindNumber), 3.0},
		{"NaN as number", math.NaN(), known(transform.KindNumber), 0.0},
		{"json number", json.Number("2.5"), known(transform.KindNumber), 2.5},
		{"bool", true, known(transform.KindBool), true},
		{"time as date", ts, known(transform.KindDate), "2024-01-02T03:04:05.000006Z"},
		{"int as text", 42, known(transform.KindText), "42"},
		{"stringer as text", stringer{}, known(transform.KindText), "str"},
		{"bytes as text", []byte("hi"), known(transform.KindText), "hi"},
		{"map as text", map[string]any{"a": 1}, known(transform.KindText), `{"a":1}`},
		{"[]string", []string{"a"}, known(transform.KindTextArray), []string{"a"}},
		{"[]any as text[]", []any{"a", 1, nil}, known(transform.KindTextArray), []string{"a", "1"}},
		{"[]int32 as int[]", []int32{1, 2}, known(transform.KindIntArray), []int64{1, 2}},
		{"[]float32 as number[]", []float32{0.5}, known(transform.KindNumberArray), []float64{0.5}},
		{"[]float64 with Inf", []float64{1, math.Inf(1)}, known(transform.KindNumberArray), []float64{1, 0}},
		{"[]any as boolean[]", []any{true, false}, known(transform.KindBoolArray), []bool{true, false}},
		{"[]time as date[]", []time.Time{ts}, known(transform.KindDateArray), []string{"2024-01-02T03:04:05.000006Z"}},
		{"scalar as text[]", "x", known(transform.KindTextArray), []string{"x"}},
		{"unknown int", int8(3), kindInfo{}, int64(3)},
		{"unknown float", float32(1), kindInfo{}, 1.0},
		{"unknown time", ts, kindInfo{}, "2024-01-02T03:04:05.000006Z"},
		{"unknown []int", []int{1}, kindInfo{}, []int64{1}},
		{"unknown struct", struct{ A int }{1}, kindInfo{}, `{"A":1}`},
	}
	for _, c := range cases {
		got, ok := propValue(c.in, c.ki)
		if !ok || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: propValue(%#v) = %#v, %v; want %#v", c.name, c.in, got, ok, c.want)
		}
	}
	if _, ok := propValue(nil, known(transform.KindText)); ok {
		t.Error("nil value is not absent")
	}
	if _, ok := propValue("x", known(transform.KindInt)); ok {
		t.Error("unparsable int is not absent")
	}
}

func TestDataTypeOfEveryKind(t *testing.T) {
	want := []string{"text", "int", "number", "boolean", "date", "text[]", "int[]", "number[]", "boolean[]", "date[]"}
	for k := transform.KindText; k <= transform.KindDateArray; k++ {
		got, err := dataType(k)
		if err != nil || got != want[k] {
			t.Errorf("dataType(%d) = %q, %v; want %q", k, got, err, want[k])
		}
	}
	if _, err := dataType(transform.KindDateArray + 1); err == nil {
		t.Error("unknown kind accepted")
	}
}

func TestPropertyName(t *testing.T) {
	for in, want := range map[string]string{"author": "author", "Author": "author", "ABC": "aBC", "_x": "_x", "": ""} {
		if got := PropertyName(in); got != want {
			t.Errorf("PropertyName(%q) = %q, want %q", in, got, want)
		}
	}
}
