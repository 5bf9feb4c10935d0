package clients

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// stanzaScript drives the library; it is written into the run's WorkDir,
// so the test may run from any directory.
//
//go:embed testdata/stanza-client.js
var stanzaScript []byte

// stanzaJS is StanzaJS (npm "stanza" 12), the JavaScript XMPP library of
// many web clients. It speaks only WebSocket (RFC 7395) or BOSH; the
// driver gives it the WebSocket URL, and stanza picks its SASL mechanism
// by its own preference (SCRAM-SHA-256 against koi).
//
// Verified by hand against a koi built from this tree (make build; a
// config with listen "websocket" on 127.0.0.1 and a tls = true one;
// users added with koictl): over ws:// and over wss:// with
// NODE_EXTRA_CA_CERTS naming koi's self-signed certificate, alice logged
// in with SCRAM-SHA-256, sent to bob, a second stanza client logged in as
// bob answered "re: "+body, and the script exited 0; with a wrong
// password it exited 1 ("authentication failed"), and over wss without
// the CA it exited 1 naming the self-signed certificate.
type stanzaJS struct{}

var _ Driver = stanzaJS{}

func (stanzaJS) Name() string { return "npm stanza" }

func (stanzaJS) Caps() Caps { return Caps{WebSocket: true, Receive: true} }

// Version is the installed version of the npm package.
func (stanzaJS) Version(ctx context.Context, env *Env) string {
	return npmVersion(filepath.Join(env.CacheDir, "npm", "stanza"), "stanza")
}

func (stanzaJS) Setup(ctx context.Context, env *Env) error {
	if _, err := exec.LookPath("node"); err != nil {
		if err := aptInstall(ctx, env, "nodejs"); err != nil {
			return err
		}
	}
	_, err := npmInstall(ctx, env, "stanza", "stanza@12")
	return err
}

func (stanzaJS) Run(ctx context.Context, env *Env, t Target, x Exchange) error {
	if t.WebSocketURL == "" {
		return errors.New("npm stanza: the target has no WebSocket URL, and stanza speaks nothing else")
	}
	// Installed by Setup; this only finds the directory again.
	dir, err := npmInstall(ctx, env, "stanza", "stanza@12")
	if err != nil {
		return err
	}
	work := t.WorkDir
	if work == "" {
		if work, err = os.MkdirTemp("", "koi-stanza-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	script := filepath.Join(work, "stanza-client.js")
	if err := os.WriteFile(script, stanzaScript, 0o644); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Dir = work
	cmd.Env = append(os.Environ(),
		// The script is not under the install directory, so require()
		// finds stanza through NODE_PATH.
		"NODE_PATH="+filepath.Join(dir, "node_modules"),
		"XMPP_WS_URL="+t.WebSocketURL,
		"XMPP_JID="+x.Me.JID(),
		"XMPP_PASSWORD="+x.Me.Password,
		"XMPP_PEER="+x.Peer,
		"XMPP_SEND="+x.Send,
		"XMPP_WANT="+x.Want,
	)
	if strings.HasPrefix(t.WebSocketURL, "wss:") && t.CAFile != "" {
		cmd.Env = append(cmd.Env, "NODE_EXTRA_CA_CERTS="+t.CAFile)
	}
	if dl, ok := ctx.Deadline(); ok {
		// The script gives up a little before ctx does, so its own
		// message says what it was waiting for.
		if left := time.Until(dl) - time.Second; left > 0 {
			cmd.Env = append(cmd.Env, "XMPP_TIMEOUT_MS="+strconv.FormatInt(left.Milliseconds(), 10))
		}
	}
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("node stanza-client.js: %w\n%s", err, out)
	}
	return nil
}
