package clients

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// xmppJSPackages are the npm packages the driver installs: the client,
// and ws, the WebSocket that xmpp.js's documentation has Node before 22
// (no global WebSocket) put in globalThis.
var xmppJSPackages = []string{"@xmpp/client@0.14", "ws@8"}

// xmppJS is @xmpp/client (xmpp.js) on Node: xmpp:// for STARTTLS, xmpps://
// for direct TLS, or the WebSocket URL; Node trusts koi's certificate
// through NODE_EXTRA_CA_CERTS.
type xmppJS struct{}

func (xmppJS) Name() string { return "@xmpp/client" }

func (xmppJS) Caps() Caps {
	return Caps{StartTLS: true, DirectTLS: true, WebSocket: true, ForceTLS12: true, Receive: true}
}

func (xmppJS) Setup(ctx context.Context, env *Env) error {
	if _, err := exec.LookPath("node"); err != nil {
		if err := aptInstall(ctx, env, "nodejs"); err != nil {
			return err
		}
	}
	_, err := npmInstall(ctx, env, "xmppjs", xmppJSPackages...)
	return err
}

func (xmppJS) Version(ctx context.Context, env *Env) string {
	return npmVersion(filepath.Join(env.CacheDir, "npm", "xmppjs"), "@xmpp/client")
}

func (xmppJS) Run(ctx context.Context, env *Env, t Target, x Exchange) error {
	dir, err := npmInstall(ctx, env, "xmppjs", xmppJSPackages...)
	if err != nil {
		return err
	}
	// Node resolves an ES module's imports from the script's own
	// directory, so the script goes next to a link to node_modules.
	src, err := testdata("xmppjs_run.mjs")
	if err != nil {
		return err
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	script := filepath.Join(t.WorkDir, "xmppjs_run.mjs")
	if err := os.WriteFile(script, b, 0o644); err != nil {
		return err
	}
	if err := os.Symlink(filepath.Join(dir, "node_modules"), filepath.Join(t.WorkDir, "node_modules")); err != nil && !os.IsExist(err) {
		return fmt.Errorf("linking node_modules: %w", err)
	}
	args := []string{script, scriptArgs(t, x)}
	if t.ClientMaxTLS12 {
		args = append([]string{"--tls-max-v1.2"}, args...)
	}
	err = runClient(t, exec.CommandContext(ctx, "node", args...), "NODE_EXTRA_CA_CERTS="+t.CAFile)
	if err != nil && openRace(err.Error()) {
		return fmt.Errorf("%w: xmpp.js missed koi's stream header (it listens for it only after its own header is written; 0.14 connection/index.js open()): %w", errClientBug, err)
	}
	return err
}

// openRace recognises xmpp.js 0.14's race in Connection.open: it awaits
// the write of its stream header and only then listens for the "open"
// event, so when koi's answer arrives first (a busy machine) the event is
// lost and open() times out although the status went to "open" - which
// proves koi answered.
func openRace(out string) bool {
	i := strings.Index(out, "status: open\n")
	j := strings.Index(out, "start failed: TimeoutError")
	return i >= 0 && j > i && strings.Contains(out[j:], "at Client.open")
}
