package config

import "testing"

func TestParseSize(t *testing.T) {
	good := map[string]int64{"0": 0, "1GB": 1 << 30, "512MB": 512 << 20, "64kB": 64 << 10, "10 b": 10, "2tb": 2 << 40, "1024": 1024}
	for in, want := range good {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GB", "-1GB", "1.5GB", "1PB", "lots", "99999999999TB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}
