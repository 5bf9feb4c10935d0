package config

import (
	"net/url"
	"strings"
)

// Contact is who runs the server, published in its disco#info (XEP-0157,
// optional block contact): for each role, URIs such as
// "mailto:abuse@example.com" or "xmpp:admin@example.com".
type Contact map[string][]string

// ContactRoles are the keys of the contact block, XEP-0157's roles.
var ContactRoles = []string{"abuse", "admin", "feedback", "sales", "security", "support"}

func (d *decoder) contact(v any) Contact {
	if v == nil {
		return nil
	}
	b := d.block([]string{"contact"}, v)
	c := Contact{}
	for _, role := range ContactRoles {
		for _, s := range b.list(role) {
			u, err := url.Parse(s)
			if err != nil || u.Scheme == "" || u.Opaque == "" && u.Host == "" {
				hint := ""
				if strings.Contains(s, "@") && !strings.Contains(s, ":") {
					hint = ` (an address wants its scheme: "mailto:` + s + `" or "xmpp:` + s + `")`
				}
				d.problem(b.at(role), "want URIs like \"mailto:%s@example.com\", got %q%s", role, s, hint)
				continue
			}
			c[role] = append(c[role], s)
		}
	}
	return c
}
