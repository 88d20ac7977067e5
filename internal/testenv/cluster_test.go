package testenv

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// A three-node cluster forms: every node reports the three members.
func TestWeaviateClusterForms(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	nodes, err := StartWeaviateCluster(ctx, 3, WeaviateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	for i, n := range nodes {
		resp, err := http.Get(n.URL() + "/v1/nodes")
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Nodes []struct{ Name, Status string }
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || len(body.Nodes) != 3 {
			t.Errorf("node%d sees %+v (%v); want three nodes", i+1, body.Nodes, err)
		}
	}
}
