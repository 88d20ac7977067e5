package sink

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pb "github.com/weaviate/weaviate/grpc/generated/protocol/v1"
)

func TestGRPCAddress(t *testing.T) {
	for _, c := range []struct {
		url, grpc, tls string
		host           string
		secured        bool
		err            string
	}{
		{url: "http://127.0.0.1:8080", grpc: "127.0.0.1:50051", host: "127.0.0.1:50051"},
		{url: "https://db.example.com", grpc: "grpc.example.com:443", host: "grpc.example.com:443", secured: true},
		{url: "https://localhost:8443", grpc: "127.0.0.1:50051", host: "127.0.0.1:50051"},
		{url: "https://db.example.com", grpc: "grpc.example.com:443", tls: "off", host: "grpc.example.com:443"},
		{url: "http://127.0.0.1:8080", grpc: "127.0.0.1:50051", tls: "on", host: "127.0.0.1:50051", secured: true},
		{url: "http://127.0.0.1:8080", grpc: "grpcs://127.0.0.1:50051", host: "127.0.0.1:50051", secured: true},
		{url: "https://db.example.com", grpc: "grpc://grpc.example.com:80", host: "grpc.example.com:80"},
		{url: "http://127.0.0.1:8080", grpc: "", err: "weaviate.grpc is required"},
		{url: "http://127.0.0.1:8080", grpc: "127.0.0.1", err: "want host:port"},
		{url: "http://127.0.0.1:8080", grpc: "127.0.0.1:50051", tls: "maybe", err: "weaviate.grpc_tls"},
	} {
		u, _ := url.Parse(c.url)
		host, secured, err := grpcAddress(Config{GRPC: c.grpc, GRPCTLS: c.tls}, u)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("grpcAddress(%q, %q, tls %q) error = %v, want one containing %q", c.url, c.grpc, c.tls, err, c.err)
			}
			continue
		}
		if err != nil || host != c.host || secured != c.secured {
			t.Errorf("grpcAddress(%q, %q, tls %q) = %q, %v, %v; want %q, %v", c.url, c.grpc, c.tls, host, secured, err, c.host, c.secured)
		}
	}
}

func TestConsistencyLevel(t *testing.T) {
	for in, want := range map[string]pb.ConsistencyLevel{
		"":       pb.ConsistencyLevel_CONSISTENCY_LEVEL_QUORUM,
		"QUORUM": pb.ConsistencyLevel_CONSISTENCY_LEVEL_QUORUM,
		"ONE":    pb.ConsistencyLevel_CONSISTENCY_LEVEL_ONE,
		"ALL":    pb.ConsistencyLevel_CONSISTENCY_LEVEL_ALL,
	} {
		got, err := consistencyLevel(in)
		if err != nil || *got != want {
			t.Errorf("consistencyLevel(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := consistencyLevel("quorum"); err == nil || !strings.Contains(err.Error(), "weaviate.consistency_level") {
		t.Errorf("consistencyLevel(quorum) error = %v, want one naming weaviate.consistency_level", err)
	}
}

func TestTLSConfigCAFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := tlsConfig(filepath.Join(dir, "missing.pem")); err == nil || !strings.Contains(err.Error(), "weaviate.ca_file") {
		t.Errorf("missing CA file: error = %v, want one naming weaviate.ca_file", err)
	}
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not a certificate"), 0o600)
	if _, err := tlsConfig(junk); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("junk CA file: error = %v, want 'no PEM certificate'", err)
	}
	conf, err := tlsConfig("")
	if err != nil || conf.RootCAs != nil || conf.InsecureSkipVerify {
		t.Errorf("no CA file: %+v, %v; want system roots, verification on", conf, err)
	}
}
