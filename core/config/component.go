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
		secret, hasSecret := b.str("secret")
		file, hasFile := b.str("secret_file")
		switch {
		case hasSecret && hasFile:
			d.problem(b.at("secret_file"), "set secret or secret_file, not both")
		case hasFile:
			c.Secret = d.secretFile(b.at("secret_file"), file)
		case hasSecret:
			c.Secret = secret
			if len(secret) < MinComponentSecret {
				d.problem(b.at("secret"), "too short: want at least %d characters (got %d), e.g. $(openssl rand -hex 24); the handshake is a SHA-1 over it that anyone on the path sees", MinComponentSecret, len(secret))
			}
		default:
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
