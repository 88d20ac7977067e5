package config

import (
	"fmt"
	"strconv"
	"strings"
)

// sizeUnits are PostgreSQL's memory units (1024-based), as in
// max_slot_wal_keep_size.
var sizeUnits = []struct {
	suffix string
	factor int64
}{
	{"tb", 1 << 40}, {"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10}, {"b", 1},
}

// ParseSize parses a size such as "1GB", "512MB", "64kB" or "0" into bytes.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return 0, fmt.Errorf("empty size; want e.g. 1GB, 512MB or 0")
	}
	factor := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, factor = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.factor
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size; want a whole number with an optional unit B, kB, MB, GB or TB, e.g. 1GB", s)
	}
	if n > (1<<62)/factor {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * factor, nil
}
