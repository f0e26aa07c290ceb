package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a certificate and key for 127.0.0.1 and returns their
// paths.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "stompbus test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestServerConfig(t *testing.T) {
	cert, key := selfSigned(t)
	res, err := load(t, []string{"-tls-cert", cert, "-tls-key", key, "-outbox-max-bytes", "1MiB", "-max-connections", "7", "-drain-retry-window", "5s"}, env{})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := res.Config.Server()
	if err != nil {
		t.Fatal(err)
	}
	if sc.TLS == nil || len(sc.TLS.Certificates) != 1 {
		t.Fatalf("TLS not loaded: %+v", sc.TLS)
	}
	if sc.Outbox.MaxBytes != 1<<20 || sc.Limits.MaxConnections != 7 || sc.DrainRetryWindow != 5*time.Second || sc.HTTPAddr != ":8080" {
		t.Errorf("server config %+v", sc)
	}

	res, err = load(t, []string{"-tls-cert", cert, "-tls-key", cert}, env{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := res.Config.Server(); err == nil || !strings.Contains(err.Error(), "tls-cert") {
		t.Errorf("a certificate as key: %v", err)
	}
}

func TestComponentConfigs(t *testing.T) {
	res, err := load(t, []string{"-max-frame-size", "128KiB", "-heart-beat", "2s", "-max-queue-depth", "9", "-max-unacked", "11"}, env{})
	if err != nil {
		t.Fatal(err)
	}
	c := &res.Config
	sc := c.Session("stompbus/x")
	if sc.Limits.MaxFrameSize != 128<<10 || sc.HeartBeatSend != 2*time.Second || sc.HeartBeatRecv != 2*time.Second || sc.MaxUnacked != 11 || sc.Server != "stompbus/x" {
		t.Errorf("session config %+v", sc)
	}
	if c.MaxQueueDepth != 9 {
		t.Errorf("max queue depth %d, want 9", c.MaxQueueDepth)
	}
}
