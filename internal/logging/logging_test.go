package logging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cdc-indexer/cdc-indexer/internal/config"
)

func TestNewJSON(t *testing.T) {
	var buf bytes.Buffer
	log, err := New("info", "json", &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug().Msg("hidden")
	log.Info().Str("slot", "cdc_indexer").Msg("started")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want only the info line, got %q", buf.String())
	}
	var entry map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &entry); err != nil {
		t.Fatalf("not JSON: %v: %s", err, lines[0])
	}
	if entry["level"] != "info" || entry["message"] != "started" || entry["slot"] != "cdc_indexer" || entry["time"] == nil {
		t.Errorf("entry = %v", entry)
	}
}

func TestNewConsole(t *testing.T) {
	var buf bytes.Buffer
	log, err := New("debug", "console", &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug().Str("slot", "cdc_indexer").Msg("started")
	out := buf.String()
	if strings.HasPrefix(out, "{") || !strings.Contains(out, "started") || !strings.Contains(out, "slot=cdc_indexer") {
		t.Errorf("console output = %q", out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("colour codes written to a non-terminal: %q", out)
	}
}

func TestLevels(t *testing.T) {
	for _, c := range []struct {
		level string
		shown []string
	}{
		{"debug", []string{"d", "i", "w", "e"}},
		{"info", []string{"i", "w", "e"}},
		{"warn", []string{"w", "e"}},
		{"error", []string{"e"}},
	} {
		var buf bytes.Buffer
		log, err := New(c.level, "json", &buf)
		if err != nil {
			t.Fatal(err)
		}
		log.Debug().Msg("d")
		log.Info().Msg("i")
		log.Warn().Msg("w")
		log.Error().Msg("e")
		var got []string
		dec := json.NewDecoder(&buf)
		for dec.More() {
			var e struct{ Message string }
			if err := dec.Decode(&e); err != nil {
				t.Fatal(err)
			}
			got = append(got, e.Message)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.shown) {
			t.Errorf("level %s shows %v, want %v", c.level, got, c.shown)
		}
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := New("trace", "json", &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `"trace"`) {
		t.Errorf("level trace: %v", err)
	}
	if _, err := New("info", "text", &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `"text"`) {
		t.Errorf("format text: %v", err)
	}
}

// Logging the configuration, in either format and by any of the usual
// zerolog calls, never prints the DSN password or the API keys.
func TestConfigSecretsNeverLogged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	err := os.WriteFile(path, []byte(`
postgres:
  dsn: "postgres://app:pg-s3cret@127.0.0.1:5432/app?sslmode=disable"
weaviate:
  url: "http://127.0.0.1:8080"
  grpc: "127.0.0.1:50051"
  api_key: wv-s3cret
embedding:
  provider: openai
  model: text-embedding-3-small
  base_url: "http://127.0.0.1:9999/v1"
  api_key: sk-s3cret
tables:
  - {table: public.articles, collection: Article, template: "{{.title}}"}
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"json", "console"} {
		var buf bytes.Buffer
		log, err := New("debug", format, &buf)
		if err != nil {
			t.Fatal(err)
		}
		log.Info().Object("config", cfg).Msg("config loaded")
		log.Info().Interface("config", cfg).Msg("config loaded")
		log.Info().Msgf("config %v", cfg)
		log.Info().Stringer("config", cfg).Msg("config loaded")
		out := buf.String()
		for _, secret := range []string{"pg-s3cret", "wv-s3cret", "sk-s3cret"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s log shows %q:\n%s", format, secret, out)
			}
		}
		if !strings.Contains(out, "app:xxxxx@127.0.0.1") || !strings.Contains(out, "Article") {
			t.Errorf("%s log lacks the redacted config:\n%s", format, out)
		}
	}
}

// Goroutines share one logger; the writer need not be safe for that.
func TestConcurrentUse(t *testing.T) {
	for _, format := range []string{"json", "console"} {
		var buf bytes.Buffer
		log, err := New("info", format, &buf)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < 100; j++ {
					log.Info().Int("worker", i).Msg("tick")
				}
			}()
		}
		wg.Wait()
		if n := strings.Count(buf.String(), "\n"); n != 800 {
			t.Errorf("%s: %d lines, want 800", format, n)
		}
	}
}
