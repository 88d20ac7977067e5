package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://proxy:s3cret@weaviate.example.com": "https://proxy:xxxxx@weaviate.example.com",
		"https://weaviate.example.com:8443/":        "https://weaviate.example.com:8443/",
		"http://user@127.0.0.1:8080":                "http://user@127.0.0.1:8080",
		"":                                          "",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedactDSN(t *testing.T) {
	cases := []struct{ in, want string }{
		{"postgres://app:s3cret@127.0.0.1:5432/app?sslmode=disable", "postgres://app:xxxxx@127.0.0.1:5432/app?sslmode=disable"},
		{"postgresql://app@127.0.0.1/app", "postgresql://app@127.0.0.1/app"},
		{"postgres://127.0.0.1/app?password=s3cret&sslmode=disable", "postgres://127.0.0.1/app?password=xxxxx&sslmode=disable"},
		{"host=127.0.0.1 user=app password=s3cret dbname=app", "host=127.0.0.1 user=app password=xxxxx dbname=app"},
		{"host=127.0.0.1 password = 's3 cret' dbname=app", "host=127.0.0.1 password = xxxxx dbname=app"},
		{"postgres://app:s3c/ret@127.0.0.1:bad/app", "postgres://app:xxxxx@127.0.0.1:bad/app"},
		{"postgres://app@127.0.0.1/app?sslkey=k.pem&sslpassword=s3cret", "postgres://app@127.0.0.1/app?sslkey=k.pem&sslpassword=xxxxx"},
		{"host=127.0.0.1 sslkey=k.pem sslpassword=s3cret dbname=app", "host=127.0.0.1 sslkey=k.pem sslpassword=xxxxx dbname=app"},
		{"", ""},
	}
	for _, c := range cases {
		if got := RedactDSN(c.in); got != c.want {
			t.Errorf("RedactDSN(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// A malformed DSN is reported without the password, whatever form it has.
func TestMalformedDSNErrorHidesPassword(t *testing.T) {
	for _, dsn := range []string{
		"postgres://app:s3cret@127.0.0.1:notaport/app",
		"postgres://app:s3cret@[::1/app",
		"postgres://app:s3c%2Fret@127.0.0.1:99999999/app",
		"host=127.0.0.1 password=s3cret port=x",
		"host=127.0.0.1 password='s3cret' sslmode=nope",
		"password=s3cret host='unterminated",
	} {
		cfg := validConfig(t)
		cfg.Postgres.DSN = dsn
		err := cfg.Validate()
		assertKeyError(t, err, "postgres.dsn", "malformed connection string")
		if err != nil && (strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "s3c/ret")) {
			t.Errorf("error for %q shows the password: %v", dsn, err)
		}
	}
}

func secretConfig(t *testing.T) *Config {
	cfg := validConfig(t)
	cfg.Postgres.DSN = "postgres://app:pg-s3cret@127.0.0.1:5432/app"
	cfg.Weaviate.APIKey = "wv-s3cret"
	setOpenAI(cfg)
	cfg.Embedding.APIKey = "sk-s3cret"
	return cfg
}

func assertNoSecrets(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range []string{"pg-s3cret", "wv-s3cret", "sk-s3cret"} {
		if strings.Contains(out, s) {
			t.Errorf("%s shows secret %q: %s", what, s, out)
		}
	}
}

func TestRedactedViews(t *testing.T) {
	cfg := secretConfig(t)
	r := cfg.Redacted()
	if r.Postgres.DSN != "postgres://app:xxxxx@127.0.0.1:5432/app" || r.Weaviate.APIKey != Mask || r.Embedding.APIKey != Mask {
		t.Errorf("Redacted = %+v", r)
	}
	if cfg.Embedding.APIKey != "sk-s3cret" || cfg.Postgres.DSN != "postgres://app:pg-s3cret@127.0.0.1:5432/app" {
		t.Error("Redacted changed the original")
	}
	r.Tables[0].Metadata[0] = "changed"
	if cfg.Tables[0].Metadata[0] == "changed" {
		t.Error("Redacted shares the metadata slices")
	}
	if empty := (Config{}).Redacted(); empty.Weaviate.APIKey != "" {
		t.Error("an unset key should stay visibly unset")
	}

	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecrets(t, "json.Marshal", string(b))
	assertNoSecrets(t, "%v", fmt.Sprintf("%v %+v %s", cfg, *cfg, cfg))

	var buf bytes.Buffer
	log := zerolog.New(&buf)
	log.Info().Object("config", cfg).Interface("again", cfg).Msg("starting")
	assertNoSecrets(t, "zerolog", buf.String())
	if !strings.Contains(buf.String(), "app:xxxxx@127.0.0.1") {
		t.Errorf("zerolog output lacks the redacted DSN: %s", buf.String())
	}
}

// The zerolog view lists keys by hand; this keeps it complete.
func TestZerologViewHasEveryKey(t *testing.T) {
	var buf bytes.Buffer
	log := zerolog.New(&buf)
	log.Info().Object("config", secretConfig(t)).Msg("")
	var out struct {
		Config map[string]any `json:"config"`
	}
	if err := json.Unmarshal(buf.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	for _, key := range scalarKeys {
		section, name, _ := strings.Cut(key, ".")
		m, _ := out.Config[section].(map[string]any)
		if _, ok := m[name]; !ok {
			t.Errorf("zerolog view lacks %s", key)
		}
	}
	tables, _ := out.Config["tables"].([]any)
	if len(tables) != 2 {
		t.Fatalf("tables = %v", out.Config["tables"])
	}
	for _, key := range tableKeys {
		if _, ok := tables[0].(map[string]any)[key]; !ok {
			t.Errorf("zerolog view lacks tables[0].%s", key)
		}
	}
}
