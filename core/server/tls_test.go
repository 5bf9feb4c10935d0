package server

import (
	"crypto/tls"
	"testing"

	"github.com/koi-im/koi/core/config"
)

func TestTLSConfigVersions(t *testing.T) {
	tests := []struct {
		min, max string
		wantMin  uint16
		wantMax  uint16
	}{
		{"1.2", "1.3", tls.VersionTLS12, 0}, // 0: Go's newest, TLS 1.3
		{"1.2", "1.2", tls.VersionTLS12, tls.VersionTLS12},
		{"1.3", "1.3", tls.VersionTLS13, 0},
		{"", "", tls.VersionTLS12, 0},
	}
	for _, tt := range tests {
		c := tlsConfig(&certStore{}, config.TLS{MinVersion: tt.min, MaxVersion: tt.max})
		if c.MinVersion != tt.wantMin || c.MaxVersion != tt.wantMax {
			t.Errorf("min %q max %q: got %x..%x, want %x..%x", tt.min, tt.max, c.MinVersion, c.MaxVersion, tt.wantMin, tt.wantMax)
		}
	}
}
