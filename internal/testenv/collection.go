package testenv

import (
	"context"
	"fmt"
	"net/http"
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

func deleteCollection(baseURL, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, baseURL+"/v1/schema/"+name, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotFound {
		return fmt.Errorf("DELETE /v1/schema/%s: %s", name, resp.Status)
	}
	return nil
}
