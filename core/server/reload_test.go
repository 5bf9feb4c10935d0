package server

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/koi-im/koi/core/config"
)

// TestReloadKeysCoverTheConfig: every field of the limits and host blocks
// has its key name, so that a reload names a changed one as the file
// writes it (a field added to config must be added here).
func TestReloadKeysCoverTheConfig(t *testing.T) {
	for _, c := range []struct {
		v     any
		names map[string]string
	}{{config.Limits{}, limitKeys}, {config.Host{}, hostKeys}} {
		typ := reflect.TypeOf(c.v)
		for i := range typ.NumField() {
			if f := typ.Field(i).Name; f != "Name" && c.names[f] == "" {
				t.Errorf("%s.%s has no key name", typ.Name(), f)
			}
		}
	}
}

func parse(t *testing.T, src string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const reloadBase = `
listen "c2s" { address = "127.0.0.1:5222" }
plugin "a" { command = "/bin/a" }
plugin "b" { command = "/bin/b" }
host "one.example" { auth = "a"  roster = "a" }
host "two.example" { auth = "b" }
`

// TestReloadTarget: what a reload applies and what it reports for a
// restart.
func TestReloadTarget(t *testing.T) {
	cur := parse(t, reloadBase)
	next := parse(t, `
log { level = "debug"  format = "json" }
listen "c2s" { address = "127.0.0.1:5333"  keepalive = "ping"  ping_timeout = "5s" }
plugin "a" { command = "/bin/a"  config = { dsn = "x" } }
plugin "c" { command = "/bin/c" }
host "one.example" { auth = "a"  roster = "c"  registration = true }
host "three.example" { auth = "c" }
limits { logins_per_ip = 3 }
`)
	tg, restart := reloadTarget(cur, next)
	want := []string{"log.format", "listen (addresses, types, TLS, paths)", `host "two.example" removed (its users' sessions would end)`}
	if !slices.Equal(restart, want) {
		t.Errorf("need restart %q, want %q", restart, want)
	}
	if tg.Log.Level != "debug" || tg.Log.Format != cur.Log.Format || tg.Limits.LoginsPerIP != 3 {
		t.Errorf("target log %+v limits.logins_per_ip %d", tg.Log, tg.Limits.LoginsPerIP)
	}
	if l := tg.Listeners[0]; l.Address != "127.0.0.1:5222" || l.Keepalive != "ping" || l.PingTimeout != 5*time.Second {
		t.Errorf("target listener %+v: want the old address and the new keepalive", l)
	}
	var names []string
	for _, h := range tg.Hosts {
		names = append(names, h.Name)
	}
	if !slices.Equal(names, []string{"one.example", "three.example", "two.example"}) {
		t.Errorf("target hosts %v", names)
	}
	// The removed host keeps its plugin b although the file dropped it.
	if _, ok := tg.Plugins["b"]; !ok || len(tg.Plugins) != 3 {
		t.Errorf("target plugins %v", tg.Plugins)
	}
	got := strings.Join(append(append(limitChanges(cur.Limits, tg.Limits), keepaliveChanges(cur.Listeners, tg.Listeners)...), hostChanges(cur.Hosts, tg.Hosts)...), "\n")
	for _, w := range []string{
		"limits.logins_per_ip 100 → 3",
		`listen "c2s" keepalive whitespace/0s/0s → ping/0s/5s`,
		`host "one.example".roster a → c`,
		`host "one.example".registration false → true`,
		`host "three.example" added`,
	} {
		if !strings.Contains(got, w) {
			t.Errorf("changes lack %q:\n%s", w, got)
		}
	}
	if strings.Contains(got, "two.example") {
		t.Errorf("the removed host is reported as applied:\n%s", got)
	}

	// Nothing changed: nothing to report.
	tg, restart = reloadTarget(cur, parse(t, reloadBase))
	if len(restart) != 0 || len(hostChanges(cur.Hosts, tg.Hosts))+len(limitChanges(cur.Limits, tg.Limits)) != 0 {
		t.Errorf("an unchanged file: restart %v", restart)
	}
}
