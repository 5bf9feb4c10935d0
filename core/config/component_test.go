package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const compBase = base + `host "example.com" { auth = "store" }
listen "component" { address = "127.0.0.1:5347" }
`

func TestComponents(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "gw.secret"), []byte("from-a-file-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := compBase + `
listen "xmpp-components" { type = "component"  address = "0.0.0.0:5348"  tls = true  keepalive = "ping"  ping_timeout = "10s" }
component "Gateway.Example.com" { secret = "0123456789abcdef" }
component "irc.example.com" { secret_file = "gw.secret"  replace = true }
component "bot.example.org" {}
`
	p := filepath.Join(dir, "koi.hcl")
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(p, []string{"KOI_COMPONENT__BOT.EXAMPLE.ORG__SECRET=from-the-environment"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Component{
		{Name: "gateway.example.com", Secret: "0123456789abcdef"},
		{Name: "irc.example.com", Secret: "from-a-file-0123456789", Replace: true},
		{Name: "bot.example.org", Secret: "from-the-environment"},
	}
	if !reflect.DeepEqual(cfg.Components, want) {
		t.Errorf("components %+v, want %+v", cfg.Components, want)
	}
	l := cfg.Listeners[2]
	if l.Type != "component" || !l.TLS || l.Keepalive != "ping" || l.PingTimeout.String() != "10s" {
		t.Errorf("component listener %+v", l)
	}
	if cfg.Listeners[1].Type != "component" || cfg.Listeners[1].TLS {
		t.Errorf("listener by label: %+v", cfg.Listeners[1])
	}
}

func TestComponentProblems(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("tiny\n"), 0o600)
	tests := []struct {
		name string
		src  string
		env  []string
		want []string
	}{
		{"short secret", compBase + `component "gw.example.com" { secret = "secret" }`, nil,
			[]string{`component "gw.example.com".secret: too short: want at least 16 characters (got 6)`}},
		{"short secret from the environment", compBase + `component "gw.example.com" {}`, []string{"KOI_COMPONENT__GW.EXAMPLE.COM__SECRET=abc"},
			[]string{`component "gw.example.com".secret: too short`}},
		{"no secret", compBase + `component "gw.example.com" {}`, nil,
			[]string{`component "gw.example.com".secret: missing: the component's shared secret (or secret_file = "path", or KOI_COMPONENT__GW.EXAMPLE.COM__SECRET)`}},
		{"both", compBase + `component "gw.example.com" { secret = "0123456789abcdef"  secret_file = "x" }`, nil,
			[]string{`component "gw.example.com".secret_file: set secret or secret_file, not both`}},
		{"missing file", compBase + `component "gw.example.com" { secret_file = "` + filepath.Join(dir, "nope") + `" }`, nil,
			[]string{`component "gw.example.com".secret_file: cannot read the secret: open `}},
		{"short file", compBase + `component "gw.example.com" { secret_file = "` + short + `" }`, nil,
			[]string{`component "gw.example.com".secret_file: the secret in ` + short + ` is too short`}},
		{"bad domain", compBase + `component "gw_x.example.com" { secret = "0123456789abcdef" }`, nil,
			[]string{`component "gw_x.example.com": not a valid domain name`}},
		{"a host", compBase + `component "example.com" { secret = "0123456789abcdef" }`, nil,
			[]string{`component "example.com": is also a host block`}},
		{"unknown key", compBase + `component "gw.example.com" { secret = "0123456789abcdef"  secrets = "x" }`, nil,
			[]string{`component "gw.example.com".secrets: unknown key (did you mean secret?)`}},
		{"twice", compBase + `component "gw.example.com" { secret = "0123456789abcdef" }` + "\n" + `component "GW.example.com" { secret = "0123456789abcdef" }`, nil,
			[]string{`component "gw.example.com": defined twice`}},
		{"no listener", base + `host "example.com" { auth = "store" }` + "\n" + `component "gw.example.com" { secret = "0123456789abcdef" }`, nil,
			[]string{`component "gw.example.com": no listener accepts components; add one like listen "component"`}},
		{"no component", compBase, nil,
			[]string{`listen "component": a component listener, but there is no component block to accept`}},
		{"starttls on component", compBase + `listen "c" { type = "component"  address = ":5348"  starttls = "required" }` + "\n" + `component "gw.example.com" { secret = "0123456789abcdef" }`, nil,
			[]string{`listen "c".starttls: only for type "c2s": the component protocol (XEP-0114) has no STARTTLS`}},
		{"path on component", compBase + `listen "c" { type = "component"  address = ":5348"  path = "/x" }` + "\n" + `component "gw.example.com" { secret = "0123456789abcdef" }`, nil,
			[]string{`listen "c".path: only for type "websocket"`}},
		{"env for a component not in the file", compBase + `component "gw.example.com" { secret = "0123456789abcdef" }`, []string{"KOI_COMPONENT__OTHER.EXAMPLE.COM__SECRET=0123456789abcdef"},
			[]string{`KOI_COMPONENT__OTHER.EXAMPLE.COM__SECRET: there is no component "other.example.com" block in the config file`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src), tt.env)
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("got %v, want Errors", err)
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(errs), len(tt.want), err)
			}
			for i, p := range errs {
				if line := p.Key + ": " + p.Msg; !strings.HasPrefix(line, tt.want[i]) {
					t.Errorf("problem %d:\n got %s\nwant %s…", i, line, tt.want[i])
				}
			}
		})
	}
}
