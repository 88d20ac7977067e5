package sink

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"

	"github.com/cdc-indexer/cdc-indexer/transform"
)

// dataType is the Weaviate data type of a metadata kind.
func dataType(k transform.Kind) (string, error) {
	switch k {
	case transform.KindText:
		return "text", nil
	case transform.KindInt:
		return "int", nil
	case transform.KindNumber:
		return "number", nil
	case transform.KindBool:
		return "boolean", nil
	case transform.KindDate:
		return "date", nil
	case transform.KindTextArray:
		return "text[]", nil
	case transform.KindIntArray:
		return "int[]", nil
	case transform.KindNumberArray:
		return "number[]", nil
	case transform.KindBoolArray:
		return "boolean[]", nil
	case transform.KindDateArray:
		return "date[]", nil
	}
	return "", fmt.Errorf("unknown metadata kind %d", k)
}

// kindInfo is what the writer knows about a metadata property.
type kindInfo struct {
	kind  transform.Kind
	known bool
}

// propValue converts a metadata value to a form the gRPC batch encoder
// accepts and Weaviate stores as the property's type. ok is false for a
// value that is absent (nil): the property is then left out, which Weaviate
// stores as null. When the kind is not known the value's Go type decides.
func propValue(v any, ki kindInfo) (out any, ok bool) {
	if v == nil {
		return nil, false
	}
	// Fast paths: the forms the transform produces.
	switch x := v.(type) {
	case string:
		if !ki.known || ki.kind == transform.KindText || ki.kind == transform.KindDate {
			return x, true
		}
	case int64:
		if !ki.known || ki.kind == transform.KindInt {
			return x, true
		}
	case float64:
		if !ki.known || ki.kind == transform.KindNumber {
			return finite(x), true
		}
	case bool:
		if !ki.known || ki.kind == transform.KindBool {
			return x, true
		}
	case []string:
		if !ki.known || ki.kind == transform.KindTextArray || ki.kind == transform.KindDateArray {
			return x, true
		}
	case []int64:
		if !ki.known || ki.kind == transform.KindIntArray {
			return x, true
		}
	case []float64:
		if !ki.known || ki.kind == transform.KindNumberArray {
			for _, f := range x {
				if math.IsNaN(f) || math.IsInf(f, 0) {
					return convert(v, ki.kind, ki.known)
				}
			}
			return x, true
		}
	case []bool:
		if !ki.known || ki.kind == transform.KindBoolArray {
			return x, true
		}
	}
	return convert(v, ki.kind, ki.known)
}

// finite maps NaN and infinities, which Weaviate cannot store, to 0.
func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// convert is the slow path of propValue.
func convert(v any, kind transform.Kind, known bool) (any, bool) {
	if !known {
		kind = guessKind(v)
	}
	switch kind {
	case transform.KindText:
		return asText(v), true
	case transform.KindDate:
		if t, ok := v.(time.Time); ok {
			return t.Format(time.RFC3339Nano), true
		}
		return asText(v), true
	case transform.KindInt:
		if i, ok := asInt(v); ok {
			return i, true
		}
		return nil, false
	case transform.KindNumber:
		if f, ok := asFloat(v); ok {
			return finite(f), true
		}
		return nil, false
	case transform.KindBool:
		if b, ok := asBool(v); ok {
			return b, true
		}
		return nil, false
	}
	// Arrays.
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		// A scalar where an array is expected: a one-element array.
		rv = reflect.ValueOf([]any{v})
	}
	n := rv.Len()
	switch kind {
	case transform.KindTextArray, transform.KindDateArray:
		out := make([]string, 0, n)
		for i := 0; i < n; i++ {
			e := rv.Index(i).Interface()
			if e == nil {
				continue
			}
			if t, ok := e.(time.Time); ok && kind == transform.KindDateArray {
				out = append(out, t.Format(time.RFC3339Nano))
				continue
			}
			out = append(out, asText(e))
		}
		return out, true
	case transform.KindIntArray:
		out := make([]int64, 0, n)
		for i := 0; i < n; i++ {
			if x, ok := asInt(rv.Index(i).Interface()); ok {
				out = append(out, x)
			}
		}
		return out, true
	case transform.KindNumberArray:
		out := make([]float64, 0, n)
		for i := 0; i < n; i++ {
			if x, ok := asFloat(rv.Index(i).Interface()); ok {
				out = append(out, finite(x))
			}
		}
		return out, true
	case transform.KindBoolArray:
		out := make([]bool, 0, n)
		for i := 0; i < n; i++ {
			if x, ok := asBool(rv.Index(i).Interface()); ok {
				out = append(out, x)
			}
		}
		return out, true
	}
	return asText(v), true
}

// guessKind picks a kind from a Go value whose property kind is unknown.
func guessKind(v any) transform.Kind {
	switch v.(type) {
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return transform.KindInt
	case float32, float64:
		return transform.KindNumber
	case bool:
		return transform.KindBool
	case time.Time:
		return transform.KindDate
	case []byte, json.RawMessage:
		return transform.KindText
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array {
		switch rv.Type().Elem().Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			return transform.KindIntArray
		case reflect.Float32, reflect.Float64:
			return transform.KindNumberArray
		case reflect.Bool:
			return transform.KindBoolArray
		}
		if rv.Type().Elem() == reflect.TypeOf(time.Time{}) {
			return transform.KindDateArray
		}
		return transform.KindTextArray
	}
	return transform.KindText
}

func asText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case json.RawMessage:
		return string(x)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	case fmt.Stringer:
		return x.String()
	case error:
		return x.Error()
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map, reflect.Slice, reflect.Array, reflect.Struct:
		if b, err := json.Marshal(v); err == nil {
			return string(b)
		}
	}
	return fmt.Sprint(v)
}

func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		return int64(x), true
	case float32:
		return int64(x), true
	case float64:
		return int64(x), true
	case json.Number:
		i, err := x.Int64()
		return i, err == nil
	case string:
		i, err := strconv.ParseInt(x, 10, 64)
		return i, err == nil
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	}
	if i, ok := asInt(v); ok {
		return float64(i), true
	}
	return 0, false
}

func asBool(v any) (bool, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case string:
		b, err := strconv.ParseBool(x)
		return b, err == nil
	}
	return false, false
}
