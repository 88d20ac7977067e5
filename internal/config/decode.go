package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
)

// strictScalars replaces mapstructure's weak typing, which would quietly turn
// `dimensions: true` into 1 or `metadata: author` into a list. Strings are
// still parsed into numbers and durations because environment overrides
// always arrive as strings.
func strictScalars(_ reflect.Type, to reflect.Type, data any) (any, error) {
	if data == nil {
		return nil, nil
	}
	switch {
	case to == durationType:
		return toDuration(data)
	case isIntKind(to.Kind()):
		return toInt(data)
	case to.Kind() == reflect.String:
		return toString(data)
	case to.Kind() == reflect.Bool:
		return toBool(data)
	case to.Kind() == reflect.Float64 || to.Kind() == reflect.Float32:
		return toFloat(data)
	case to.Kind() == reflect.Map:
		return toMap(data)
	case to.Kind() == reflect.Struct:
		if _, ok := data.(map[string]any); !ok {
			return nil, fmt.Errorf("want a mapping of keys, got %s", describe(data))
		}
	case to.Kind() == reflect.Slice:
		if reflect.TypeOf(data).Kind() != reflect.Slice {
			return nil, fmt.Errorf("want a list, got %s", describe(data))
		}
	}
	return data, nil
}

func isIntKind(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

func toInt(data any) (any, error) {
	switch v := data.(type) {
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return v, nil
	case float32:
		return toInt(float64(v))
	case float64:
		if v != math.Trunc(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("want a whole number, got %v", v)
		}
		return int64(v), nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("want a whole number, got %q", v)
		}
		return n, nil
	}
	return nil, fmt.Errorf("want a whole number, got %s", describe(data))
}

func toDuration(data any) (any, error) {
	switch v := data.(type) {
	case time.Duration:
		return v, nil
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("want a duration such as \"30s\" or \"5ms\", got %q", v)
		}
		return d, nil
	case int, int64:
		// A bare number has no unit; only zero is unambiguous.
		if reflect.ValueOf(v).Int() == 0 {
			return time.Duration(0), nil
		}
	}
	return nil, fmt.Errorf("want a duration such as \"30s\" or \"5ms\", got %s", describe(data))
}

func toString(data any) (any, error) {
	switch v := data.(type) {
	case string:
		return v, nil
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		// YAML reads `model: 3` as a number; the intent is still clear.
		return fmt.Sprint(v), nil
	}
	return nil, fmt.Errorf("want a string, got %s", describe(data))
}

func toBool(data any) (any, error) {
	switch v := data.(type) {
	case bool:
		return v, nil
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("want true or false, got %s", describe(data))
}

// describe names a decoded YAML value's kind for error messages, quoting
// strings and numbers so the user can find them.
func describe(data any) string {
	switch v := data.(type) {
	case string:
		return fmt.Sprintf("the string %q", v)
	case bool:
		return fmt.Sprintf("the boolean %v", v)
	case map[string]any, map[any]any:
		return "a mapping"
	}
	switch reflect.TypeOf(data).Kind() {
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return fmt.Sprintf("the number %v", data)
	}
	return fmt.Sprintf("a %T", data)
}

// decodeErrors turns mapstructure's joined errors into one KeyError per key.
func decodeErrors(err error) Errors {
	var out Errors
	for _, leaf := range leaves(err) {
		var de *mapstructure.DecodeError
		if !errors.As(leaf, &de) {
			out = append(out, &KeyError{Key: "(config)", Err: leaf})
			continue
		}
		// The innermost DecodeError carries the full key path.
		for {
			var inner *mapstructure.DecodeError
			if !errors.As(de.Unwrap(), &inner) {
				break
			}
			de = inner
		}
		out = append(out, &KeyError{Key: de.Name(), Err: de.Unwrap()})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// leaves flattens a tree of errors.Join results.
func leaves(err error) []error {
	if err == nil {
		return nil
	}
	if multi, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range multi.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	if _, ok := err.(*mapstructure.DecodeError); !ok {
		// mapstructure wraps the joined errors in one fmt.Errorf("%w").
		if inner := errors.Unwrap(err); inner != nil {
			if _, ok := inner.(interface{ Unwrap() []error }); ok {
				return leaves(inner)
			}
		}
	}
	return []error{err}
}

// findUnknown lists the keys of m, recursively, that struct type t has no
// field for, as key paths (postgres.dns, tables[2].colection).
func findUnknown(m map[string]any, t reflect.Type, prefix string) []string {
	var out []string
	for k, val := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		f, ok := fieldByTag(t, k)
		if !ok {
			out = append(out, key)
			continue
		}
		switch {
		case f.Type.Kind() == reflect.Struct && f.Type != durationType:
			if sub, ok := val.(map[string]any); ok {
				out = append(out, findUnknown(sub, f.Type, key)...)
			}
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			if list, ok := val.([]any); ok {
				for i, item := range list {
					if sub, ok := item.(map[string]any); ok {
						out = append(out, findUnknown(sub, f.Type.Elem(), fmt.Sprintf("%s[%d]", key, i))...)
					}
				}
			}
		}
	}
	return out
}

// fieldByTag finds the field whose mapstructure tag is name, ignoring case
// as viper and mapstructure do.
func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if strings.EqualFold(f.Tag.Get("mapstructure"), name) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// unknownKeys reports keys present in the input that Config does not have,
// with a suggestion when one is a likely typo.
func unknownKeys(unused []string) Errors {
	sort.Strings(unused)
	var out Errors
	for _, key := range unused {
		reason := "unknown key"
		if s := suggest(key); s != "" {
			reason += fmt.Sprintf(" (did you mean %s?)", s)
		}
		out = append(out, &KeyError{Key: key, Err: errors.New(reason)})
	}
	return out
}

// suggest returns the known key closest to key, if it is close enough to be
// a typo.
func suggest(key string) string {
	prefix, candidates := "", scalarKeys
	if strings.HasPrefix(key, tablesKey+"[") {
		// tables[3].colection: compare the part after the index.
		if i := strings.Index(key, "]."); i >= 0 {
			prefix, key, candidates = key[:i+2], key[i+2:], tableKeys
		}
	}
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := editDistance(key, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return prefix + best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
