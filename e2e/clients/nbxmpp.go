package clients

import (
	"context"
	"os/exec"
)

// nbxmpp is python3-nbxmpp, Gajim's library, driven through its Client
// API on a GLib main loop as Gajim drives it. Its TLS is Gio's (GnuTLS),
// which ignores SSL_CERT_FILE: the script pins koi's certificate the way
// Gajim does once a user accepted it (set_accepted_certificates).
type nbxmpp struct{}

func (nbxmpp) Name() string { return "python3-nbxmpp" }

func (nbxmpp) Caps() Caps {
	return Caps{StartTLS: true, DirectTLS: true, ForceTLS12: true, Receive: true}
}

func (nbxmpp) Setup(ctx context.Context, env *Env) error {
	if err := aptInstall(ctx, env, "gir1.2-glib-2.0", "glib-networking"); err != nil {
		return err
	}
	return pythonImports(ctx, env, "python3-nbxmpp", "nbxmpp")
}

func (nbxmpp) Run(ctx context.Context, env *Env, t Target, x Exchange) error {
	path, err := testdata("nbxmpp_run.py")
	if err != nil {
		return err
	}
	var extra []string
	if t.ClientMaxTLS12 {
		// glib-networking's GnuTLS backend takes its priority string
		// from here.
		extra = append(extra, "G_TLS_GNUTLS_PRIORITY=NORMAL:-VERS-TLS1.3")
	}
	return runClient(t, exec.CommandContext(ctx, systemPython, path, scriptArgs(t, x)), extra...)
}
