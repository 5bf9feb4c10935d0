package clients

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestToolsSmoke runs the go-sendxmpp, sendxmpp and profanity drivers
// against a koi started by hand, before the matrix drives them:
//
//	KOI_SMOKE_ADDR=127.0.0.1:5222 KOI_SMOKE_TLS_ADDR=127.0.0.1:5223 \
//	KOI_SMOKE_CA=data/tls/cert.pem go test ./e2e/clients -run ToolsSmoke -v
//
// with accounts alice@localhost and peer@localhost (password "pw") and a
// peer logged in that answers "re: "+body. It skips without KOI_SMOKE_ADDR.
func TestToolsSmoke(t *testing.T) {
	addr := os.Getenv("KOI_SMOKE_ADDR")
	if addr == "" {
		t.Skip("KOI_SMOKE_ADDR not set")
	}
	tlsAddr, ca := os.Getenv("KOI_SMOKE_TLS_ADDR"), os.Getenv("KOI_SMOKE_CA")
	target := func(a string, direct bool) Target {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := strconv.Atoi(port)
		return Target{Domain: "localhost", Host: host, Port: p, DirectTLS: direct, CAFile: ca}
	}
	env := &Env{CacheDir: t.TempDir(), Root: os.Geteuid() == 0}
	for _, d := range []Driver{goSendXMPP{}, sendXMPP{}, profanity{}} {
		if err := d.Setup(context.Background(), env); err != nil {
			t.Fatalf("%s: %v", d.Name(), err)
		}
		for _, direct := range []bool{false, true} {
			for _, tls12 := range []bool{false, true} {
				c := d.Caps()
				if (tls12 && !c.ForceTLS12) || (direct && !c.DirectTLS) || (direct && tlsAddr == "") {
					continue
				}
				a := addr
				if direct {
					a = tlsAddr
				}
				name := fmt.Sprintf("%s/direct=%v/tls12=%v", d.Name(), direct, tls12)
				t.Run(name, func(t *testing.T) {
					tg := target(a, direct)
					tg.ClientMaxTLS12 = tls12
					tg.WorkDir = t.TempDir()
					send := fmt.Sprintf("hello from %s at %d", name, time.Now().UnixNano())
					x := Exchange{Me: Account{User: "alice", Domain: "localhost", Password: "pw"}, Peer: "peer@localhost", Send: send}
					if c.Receive {
						x.Want = "re: " + send
					}
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					start := time.Now()
					if err := d.Run(ctx, env, tg, x); err != nil {
						t.Fatal(err)
					}
					t.Logf("ok in %v", time.Since(start).Round(time.Millisecond))
				})
			}
		}
	}
}

// TestToolsSmokeFailures checks, against the same koi, that the drivers
// fail (and return) when the certificate is not trusted or the password
// is wrong, rather than pass or hang.
func TestToolsSmokeFailures(t *testing.T) {
	addr := os.Getenv("KOI_SMOKE_ADDR")
	if addr == "" {
		t.Skip("KOI_SMOKE_ADDR not set")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	// The system CA bundle: a valid PEM file that cannot hold koi's
	// self-signed certificate.
	otherCA := "/etc/ssl/certs/ca-certificates.crt"
	env := &Env{CacheDir: t.TempDir(), Root: os.Geteuid() == 0}
	for _, d := range []Driver{goSendXMPP{}, sendXMPP{}, profanity{}} {
		for _, c := range []struct {
			name, ca, pw string
		}{
			{"untrusted", otherCA, "pw"},
			{"badpassword", os.Getenv("KOI_SMOKE_CA"), "wrong"},
		} {
			t.Run(d.Name()+"/"+c.name, func(t *testing.T) {
				tg := Target{Domain: "localhost", Host: host, Port: p, CAFile: c.ca, WorkDir: t.TempDir()}
				x := Exchange{Me: Account{User: "alice", Domain: "localhost", Password: c.pw}, Peer: "peer@localhost", Send: "should not arrive"}
				if d.Caps().Receive {
					x.Want = "re: should not arrive"
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				start := time.Now()
				err := d.Run(ctx, env, tg, x)
				if err == nil {
					t.Fatal("Run succeeded")
				}
				t.Logf("failed in %v as it should: %.600s", time.Since(start).Round(time.Millisecond), err)
			})
		}
	}
}
