package clients

import "context"

// aioxmpp is python3-aioxmpp with its default security layer (pyOpenSSL)
// and SASL choice; koi's certificate is added to the trust store through
// the ssl_context_factory hook aioxmpp documents for it.
type aioxmpp struct{}

func (aioxmpp) Name() string { return "python3-aioxmpp" }

func (aioxmpp) Caps() Caps {
	return Caps{StartTLS: true, DirectTLS: true, ForceTLS12: true, Receive: true}
}

func (aioxmpp) Setup(ctx context.Context, env *Env) error {
	return pythonImports(ctx, env, "python3-aioxmpp", "aioxmpp")
}

func (aioxmpp) Run(ctx context.Context, env *Env, t Target, x Exchange) error {
	return runPython(ctx, t, x, "aioxmpp_run.py")
}
