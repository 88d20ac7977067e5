package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// TLSProxy terminates TLS in front of a plain TCP server on loopback, the
// way a load balancer or ingress terminates it in front of Weaviate. It
// forwards bytes and understands nothing of the protocol, so REST and gRPC
// both pass through it unchanged (each needs its own proxy: ALPN must
// offer h2 for gRPC and http/1.1 for REST).
type TLSProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
}

// TestCA is a throwaway certificate authority and one server certificate it
// signed for 127.0.0.1 and localhost.
type TestCA struct {
	// CAFile is the CA certificate in PEM, what a client's ca_file names.
	CAFile string
	server tls.Certificate
}

// NewTestCA creates a CA and a server certificate in dir.
func NewTestCA(dir string) (*TestCA, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "cdc-indexer test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca := &TestCA{
		CAFile: filepath.Join(dir, "ca.pem"),
		server: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
	}
	if err := os.WriteFile(ca.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		return nil, err
	}
	return ca, nil
}

// StartTLSProxy listens on a free loopback port and forwards every
// connection, TLS removed, to target; alpn is what the TLS handshake offers
// ("h2" for gRPC, "http/1.1" for REST).
func (ca *TestCA) StartTLSProxy(target string, alpn ...string) (*TLSProxy, error) {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{ca.server},
		NextProtos:   alpn,
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		return nil, fmt.Errorf("testenv: tls proxy: %w", err)
	}
	p := &TLSProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *TLSProxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting, closes the open connections and waits for their
// forwarding to end.
func (p *TLSProxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// track adds an open connection to the set Close ends, or removes it. A
// connection opened while the proxy closes is closed at once.
func (p *TLSProxy) track(c net.Conn, open bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case open && p.closed:
		c.Close()
	case open:
		p.conns[c] = true
	default:
		delete(p.conns, c)
	}
}

func (p *TLSProxy) serve() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer client.Close()
			p.track(client, true)
			defer p.track(client, false)
			server, err := net.Dial("tcp", p.target)
			if err != nil {
				return
			}
			defer server.Close()
			p.track(server, true)
			defer p.track(server, false)
			done := make(chan struct{}, 2)
			go func() { io.Copy(server, client); done <- struct{}{} }()
			go func() { io.Copy(client, server); done <- struct{}{} }()
			<-done // either side closed: end both
		}()
	}
}
