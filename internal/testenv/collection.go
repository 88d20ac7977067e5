package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode"
)

// CollectionName returns a unique, valid Weaviate collection (class) name
// for this test: "T" + the test name's letters and digits + a random
// suffix, e.g. TTestSinkUpsertX3f9a1c2b. At cleanup it deletes the
// collection from the shared Weaviate.
func CollectionName(t testing.TB) string {
	t.Helper()
	const maxBase = 48 // keeps names readable in logs; Weaviate allows far more
	base := sanitize(t.Name(), func(r rune) bool {
		return r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r))
	}, 0)
	if len(base) > maxBase {
		base = base[:maxBase]
	}
	name := "T" + base + "X" + randomHex(4)
	t.Cleanup(func() {
		// Only the shared Weaviate is cleaned, and only if this process has
		// resolved it: a test that used a private server must not cause the
		// shared one to start just to delete nothing.
		if !sharedWeaviate.resolved.Load() {
			return
		}
		if err := deleteCollection(sharedWeaviate.value.url, name); err != nil {
			t.Logf("testenv: cleanup of collection %s: %v", name, err)
		}
	})
	return name
}

// deleteCollection deletes the collection name, and, since the connector
// serves a configured name as an alias over versions (name_v1, ...), the
// alias and every version.
func deleteCollection(baseURL, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := deleteURL(ctx, baseURL+"/v1/aliases/"+name); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/v1/schema", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	var schema struct {
		Classes []struct {
			Class string `json:"class"`
		} `json:"classes"`
	}
	err = json.NewDecoder(resp.Body).Decode(&schema)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("GET /v1/schema: %w", err)
	}
	for _, c := range schema.Classes {
		if c.Class == name || strings.HasPrefix(c.Class, name+"_v") {
			if err := deleteURL(ctx, baseURL+"/v1/schema/"+c.Class); err != nil {
				return err
			}
		}
	}
	return nil
}

func deleteURL(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotFound {
		return fmt.Errorf("DELETE %s: %s", url, resp.Status)
	}
	return nil
}
