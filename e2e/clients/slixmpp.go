package clients

import (
	"context"
	"os/exec"
)

// slixmpp is python3-slixmpp, the library of poezio and of many bots,
// with its defaults: it chooses the SASL mechanism (the -PLUS ones first
// when offered) and trusts koi's certificate through its ca_certs setting.
type slixmpp struct{}

func (slixmpp) Name() string { return "python3-slixmpp" }

func (slixmpp) Caps() Caps {
	return Caps{StartTLS: true, DirectTLS: true, ForceTLS12: true, Receive: true}
}

func (slixmpp) Setup(ctx context.Context, env *Env) error {
	return pythonImports(ctx, env, "python3-slixmpp", "slixmpp")
}

func (slixmpp) Run(ctx context.Context, env *Env, t Target, x Exchange) error {
	return runPython(ctx, t, x, "slixmpp_run.py")
}

// runPython runs a script under testdata/ with the system Python; for a
// client capped at TLS 1.2 OpenSSL gets a config saying so.
func runPython(ctx context.Context, t Target, x Exchange, script string) error {
	path, err := testdata(script)
	if err != nil {
		return err
	}
	var env []string
	if t.ClientMaxTLS12 {
		v, err := openSSLMaxTLS12(t.WorkDir)
		if err != nil {
			return err
		}
		env = append(env, v)
	}
	return runClient(t, exec.CommandContext(ctx, systemPython, path, scriptArgs(t, x)), env...)
}
