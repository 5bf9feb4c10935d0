package config

import (
	"os"
	"strings"
)

// components reads the component blocks and checks they fit the
// listeners: components need a component listener, and a component
// listener with no component to accept is a mistake.
func (d *decoder) components(v any, fileOrder []string, hosts []Host, listeners []Listener) []Component {
	labels, bodies := d.labels("component", v, fileOrder)
	var compListener string
	for _, l := range listeners {
		if l.Type == "component" {
			compListener = l.Name
			break
		}
	}
	if len(labels) == 0 {
		if compListener != "" {
			d.problem([]string{"listen", compListener}, "a component listener, but there is no component block to accept; add one like "+
				`component "gateway.example.com" { secret_file = "gateway.secret" }`)
		}
		return nil
	}
	var out []Component
	for _, label := range labels {
		b := d.block([]string{"component", label}, bodies[label])
		c := Component{Name: label, Replace: b.boolean("replace", false)}
		if err := checkDomain(label); err != "" {
			d.problem(b.path, "not a valid domain name: %s", err)
		}
		for _, h := range hosts {
			if h.Name == label {
				d.problem(b.path, "is also a host block: a domain is served either by koi or by a component")
			}
		}
		var set bool
		if c.Secret, set = d.secret(b, "; the handshake is a SHA-1 over it that anyone on the path sees"); !set {
			d.problem(b.at("secret"), "missing: the component's shared secret (or secret_file = \"path\", or KOI_COMPONENT__%s__SECRET)", strings.ToUpper(label))
		}
		out = append(out, c)
	}
	if compListener == "" {
		d.problem([]string{"component", labels[0]}, "no listener accepts components; add one like "+
			`listen "component" { address = "127.0.0.1:5347" }`)
	}
	return out
}

// secret reads block b's shared secret from its key secret or from the
// file its key secret_file names; why ends the message about a secret too
// short. set is false when neither key is there.
func (d *decoder) secret(b *block, why string) (secret string, set bool) {
	secret, hasSecret := b.str("secret")
	file, hasFile := b.str("secret_file")
	switch {
	case hasSecret && hasFile:
		d.problem(b.at("secret_file"), "set secret or secret_file, not both")
		return "", true
	case hasFile:
		return d.secretFile(b.at("secret_file"), file), true
	case hasSecret && len(secret) < MinComponentSecret:
		d.problem(b.at("secret"), "too short: want at least %d characters (got %d), e.g. $(openssl rand -hex 24)%s", MinComponentSecret, len(secret), why)
	}
	return secret, hasSecret
}

// secretFile reads a secret from the file at p (relative to the config
// file), dropping the trailing newline an editor or echo leaves.
func (d *decoder) secretFile(key []string, p string) string {
	if p == "" {
		d.problem(key, "must not be empty")
		return ""
	}
	b, err := os.ReadFile(d.file(p))
	if err != nil {
		d.problem(key, "cannot read the secret: %v", err)
		return ""
	}
	s := strings.TrimRight(string(b), "\r\n")
	if len(s) < MinComponentSecret {
		d.problem(key, "the secret in %s is too short: want at least %d characters (got %d), e.g. openssl rand -hex 24 > %s", p, MinComponentSecret, len(s), p)
		return ""
	}
	return s
}
