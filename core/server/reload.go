package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/config"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/pluginhost"
)

// certStore is the certificate every TLS listener serves; a reload swaps
// it, and the next handshake uses the new one (sessions up keep theirs).
type certStore struct {
	p atomic.Pointer[tls.Certificate]
}

func (c *certStore) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.p.Load(), nil }

// ReloadResult says what a reload did.
type ReloadResult struct {
	// Applied lists what changed and took effect, one item each
	// ("log.level info → debug", "limits.logins_per_ip 100 → 5",
	// `plugin "store" restarted with its new settings`,
	// `host "example.com".roster store → other`...).
	Applied []string
	// NeedRestart lists the changed config sections a running koi cannot
	// take over; they take effect at the next start.
	NeedRestart []string
}

// Reload reads the config file again, checks all of it, and applies what
// can change without dropping a session:
//   - log.level, and the TLS certificate (new handshakes serve the new one:
//     a renewed certificate);
//   - the limits block and the listeners' keepalive settings: the objects
//     that enforce them take the new values in place (rates keep what
//     they counted), new connections read under the new stanza limits;
//   - plugin blocks: a new one is started, a changed one (command, args,
//     sha256, config, call_timeout, reattach) is started again as a new
//     process beside the old, which serves until the switch and is then
//     stopped, a removed one is stopped;
//   - hosts: the features' plugins and settings, and new hosts; the next
//     operation of each session uses them, what was kept in memory from
//     a backend the host no longer uses is read again from the new one.
//
// What else changed is named in NeedRestart and not applied. Everything
// is checked and every new plugin started before anything is applied: a
// file with problems, a certificate that does not load, a plugin that
// does not start or refuses its config, or a host given a plugin that
// cannot serve it changes nothing and is the error.
func (s *Server) Reload(ctx context.Context) (ReloadResult, error) {
	var res ReloadResult
	if s.ConfigPath == "" {
		return res, errors.New("koi was not started from a configuration file")
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	lv := s.live
	if s.certs == nil || lv == nil {
		return res, errors.New("koi is not running")
	}
	next, err := config.Load(s.ConfigPath, os.Environ())
	if err != nil {
		return res, fmt.Errorf("%s: %w", s.ConfigPath, err)
	}
	cur := s.cfg
	cert, p := loadCert(next.TLS.CertFile, next.TLS.KeyFile)
	if p != nil {
		return res, config.Errors{*p}
	}
	if _, err := handshakeSize(next.Limits); err != nil {
		return res, err
	}
	target, restart := reloadTarget(cur, next)
	res.NeedRestart = restart
	for _, lc := range target.Hosts {
		if lv.mods.Host(lc.Name) == nil && lv.mods.HasComponent(lc.Name) {
			return res, config.Errors{{Key: fmt.Sprintf("host %q", lc.Name), Msg: "the domain is served by a component"}}
		}
	}

	// Start what is new or changed, beside what serves now.
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	plan, err := lv.ph.Prepare(pctx, PluginSpecs(target, nil))
	cancel()
	if err != nil {
		return ReloadResult{}, fmt.Errorf("plugins: %w", err)
	}
	hosts, err := buildHosts(target, plan.Backend, s.log)
	if err != nil {
		plan.Abort()
		return ReloadResult{}, err
	}
	hosts, changedHosts := keepUnchangedHosts(cur, target, hosts, lv, plan)
	set, err := lv.newHostSet(target, hosts)
	if err != nil {
		plan.Abort()
		return ReloadResult{}, err
	}
	archives, err := lv.archives.prepare(hosts)
	if err != nil {
		plan.Abort()
		return ReloadResult{}, err
	}

	// Everything checked: apply.
	level := next.Log.Level != cur.Log.Level
	if level {
		res.Applied = append(res.Applied, fmt.Sprintf("log.level %s → %s", cur.Log.Level, next.Log.Level))
	}
	if old := s.certs.p.Load(); old == nil || !sameCert(*old, cert) {
		s.certs.p.Store(&cert)
		res.Applied = append(res.Applied, "tls certificate ("+next.TLS.CertFile+")")
	}
	res.Applied = append(res.Applied, limitChanges(cur.Limits, target.Limits)...)
	res.Applied = append(res.Applied, keepaliveChanges(cur.Listeners, target.Listeners)...)
	lv.setLimits(target.Limits, target.Listeners)
	for _, n := range plan.Started() {
		res.Applied = append(res.Applied, fmt.Sprintf("plugin %q started", n))
	}
	for _, n := range plan.Replaced() {
		res.Applied = append(res.Applied, fmt.Sprintf("plugin %q restarted with its new settings", n))
	}
	for _, n := range plan.Removed() {
		res.Applied = append(res.Applied, fmt.Sprintf("plugin %q stopped", n))
	}
	res.Applied = append(res.Applied, hostChanges(cur.Hosts, target.Hosts)...)
	stopped := archives.commit()
	lv.hosts.Store(set)
	if changedHosts {
		lv.mods.SetHosts(hosts)
	}
	if len(stopped) > 0 {
		cctx, cancel := context.WithTimeout(context.Background(), cur.Server.ShutdownTimeout)
		lv.archives.closeWriters(cctx, stopped)
		cancel()
	}
	if err := plan.Commit(retireGrace, cur.Server.ShutdownTimeout); err != nil {
		// Only when koi is shutting down.
		return res, err
	}
	if s.reloadComponents(cur.Components, next.Components, &res) {
		target.Components = next.Components
	}
	s.cfg = target
	// Logged before a new level can hide it.
	s.log.Info("configuration reloaded", "applied", res.Applied, "need_restart", res.NeedRestart)
	if len(res.NeedRestart) > 0 {
		s.log.Warn("changed settings that take effect only at the next start", "sections", res.NeedRestart)
	}
	if level {
		s.log.SetLevel(hclog.LevelFromString(next.Log.Level))
	}
	return res, nil
}

// retireGrace is how long a replaced plugin still takes new calls after a
// reload, for the operations that looked it up just before.
const retireGrace = 2 * time.Second

// reloadTarget is the configuration koi runs after a reload to next from
// cur: next's log level, limits, listeners' keepalives, plugins and hosts
// (but their upload services), and cur's everything else, which restart
// names. A host removed from the
// file keeps running as it was, with the plugins it uses.
func reloadTarget(cur, next *config.Config) (*config.Config, []string) {
	t := *cur
	t.Log.Level = next.Log.Level
	t.Limits = next.Limits
	var restart []string
	for _, d := range []struct {
		key       string
		cur, next any
	}{
		{"log.format", cur.Log.Format, next.Log.Format},
		{"tls (files, versions)", []any{cur.TLS.CertFile, cur.TLS.KeyFile, cur.TLS.MinVersion, cur.TLS.MaxVersion}, []any{next.TLS.CertFile, next.TLS.KeyFile, next.TLS.MinVersion, next.TLS.MaxVersion}},
		{"stream_management", cur.SM, next.SM},
		{"server", cur.Server, next.Server},
		{"archive", cur.Archive, next.Archive},
		{"push", cur.Push, next.Push},
		{"admin", cur.Admin, next.Admin},
		{"metrics", cur.Metrics, next.Metrics},
		{"muc", cur.MUC, next.MUC},
		{"cluster", cur.Cluster, next.Cluster},
		{"turn", cur.TURN, next.TURN},
		{"contact", cur.Contact, next.Contact},
	} {
		if !reflect.DeepEqual(d.cur, d.next) {
			restart = append(restart, d.key)
		}
	}

	// Listeners: the keepalive keys of a listener that stays apply, the
	// rest (addresses, types, TLS, paths) needs the sockets made again.
	t.Listeners = slices.Clone(cur.Listeners)
	nextL := map[string]config.Listener{}
	for _, l := range next.Listeners {
		nextL[l.Name] = l
	}
	listenRestart := len(cur.Listeners) != len(next.Listeners)
	for i, l := range t.Listeners {
		n, ok := nextL[l.Name]
		if !ok {
			listenRestart = true
			continue
		}
		l.Keepalive, l.KeepaliveInterval, l.PingTimeout = n.Keepalive, n.KeepaliveInterval, n.PingTimeout
		t.Listeners[i] = l
		if !reflect.DeepEqual(l, n) {
			listenRestart = true
		}
	}
	if listenRestart {
		restart = append(restart, "listen (addresses, types, TLS, paths)")
	}

	// Hosts: next's, plus the removed ones as they were. A host's chat
	// service keeps its domain and store until a restart: its rooms were
	// read from that store.
	t.Hosts = slices.Clone(next.Hosts)
	curHost := map[string]config.Host{}
	for _, h := range cur.Hosts {
		curHost[h.Name] = h
	}
	for i, h := range t.Hosts {
		c, ok := curHost[h.Name]
		switch {
		case !ok && next.MUC.Enabled && h.MUCDomain != "":
			restart = append(restart, fmt.Sprintf("host %q's chat service (starts with koi)", h.Name))
		case ok && (c.MUC != h.MUC || c.MUCDomain != h.MUCDomain):
			restart = append(restart, fmt.Sprintf("host %q muc, muc_domain", h.Name))
			t.Hosts[i].MUC, t.Hosts[i].MUCDomain = c.MUC, c.MUCDomain
		}
	}
	t.Plugins = maps.Clone(next.Plugins)
	for _, h := range t.Hosts {
		if _, ok := t.Plugins[h.MUC]; h.MUC != "" && !ok {
			t.Plugins[h.MUC] = cur.Plugins[h.MUC] // the chat service still uses it
		}
	}
	inNext := map[string]bool{}
	for _, h := range next.Hosts {
		inNext[h.Name] = true
	}
	// A host's upload service (its listener, store and component) stays
	// as it started.
	running := map[string]*config.Upload{}
	for _, h := range cur.Hosts {
		running[h.Name] = h.Upload
	}
	for i, h := range t.Hosts {
		if !reflect.DeepEqual(h.Upload, running[h.Name]) {
			restart = append(restart, fmt.Sprintf("host %q.upload", h.Name))
			t.Hosts[i].Upload = running[h.Name]
		}
	}
	for _, h := range cur.Hosts {
		if inNext[h.Name] {
			continue
		}
		restart = append(restart, fmt.Sprintf("host %q removed (its users' sessions would end)", h.Name))
		t.Hosts = append(t.Hosts, h)
		for _, f := range hostFeatures {
			for _, name := range f.plugins(h) {
				if _, ok := t.Plugins[name]; !ok {
					t.Plugins[name] = cur.Plugins[name]
				}
			}
		}
	}
	return &t, restart
}

// keepUnchangedHosts puts back the running version of each host whose
// settings and plugins the reload does not change, so that what it keeps
// in memory stays; it reports whether any host is new or changed.
func keepUnchangedHosts(cur, target *config.Config, hosts []*modules.Host, lv *live, plan *pluginhost.Plan) ([]*modules.Host, bool) {
	was := map[string]config.Host{}
	for _, h := range cur.Hosts {
		was[h.Name] = h
	}
	changed := false
	out := slices.Clone(hosts)
	for i, hc := range target.Hosts {
		old := lv.mods.Host(hc.Name)
		if old == nil || !reflect.DeepEqual(was[hc.Name], hc) {
			changed = true
			continue
		}
		same := true
		for _, f := range hostFeatures {
			for _, name := range f.plugins(hc) {
				nb, _ := plan.Backend(name)
				ob, _ := lv.ph.Backend(name)
				same = same && nb == ob
			}
		}
		if same && out[i].Name == old.Name {
			out[i] = old
		} else {
			changed = true
		}
	}
	return out, changed
}

// limitKeys names the fields of config.Limits as the file writes them.
var limitKeys = map[string]string{
	"MaxStanzaBytes": "max_stanza_size", "MaxDepth": "max_depth", "IdleTimeout": "idle_timeout",
	"KeepaliveInterval": "keepalive_interval", "AuthFailuresPerIP": "auth_failures_per_ip",
	"AuthFailuresPerAccount": "auth_failures_per_account", "AuthFailureWindow": "auth_failure_window",
	"AuthSlowdownMax": "auth_slowdown_max", "RegistrationsPerIP": "registrations_per_ip",
	"RegistrationWindow": "registration_window", "SendQueue": "send_queue",
	"ConnectionsPerIP": "connections_per_ip", "LoginsPerIP": "logins_per_ip", "RateWindow": "rate_window",
	"HandshakeConcurrency": "handshake_concurrency", "HandshakeQueue": "handshake_queue", "HandshakeWait": "handshake_wait",
}

// hostKeys names the fields of config.Host as the file writes them. A new
// host key needs its line here (TestReloadKeysCoverTheConfig says so);
// its backend then joins a reload's swap with nothing more to do, since
// a reload builds each changed host whole with buildHosts, as Run does.
var hostKeys = map[string]string{
	"Auth": "auth", "Roster": "roster", "Offline": "offline", "VCard": "vcard", "Private": "private",
	"Archive": "archive", "Blocklist": "blocklist", "Tokens": "tokens", "TokenLifetime": "token_lifetime",
	"SharedRoster": "shared_roster", "Registration": "registration", "PasswordChange": "password_change",
	"OfflineLimit": "offline_limit", "ChannelBinding": "channel_binding", "MUC": "muc", "MUCDomain": "muc_domain", "PubSub": "pubsub",
	"Upload": "upload", "Admins": "admins",
}

// fieldChanges lists the fields of two structs of one type that differ,
// as "PREFIX.key old → new" in field order, keys from names; a field
// without a name is listed under its Go name (a key added to config but
// not here still shows).
func fieldChanges(prefix string, a, b any, names map[string]string) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var out []string
	for i := range va.NumField() {
		f := va.Type().Field(i)
		if f.Name == "Name" {
			continue
		}
		x, y := va.Field(i).Interface(), vb.Field(i).Interface()
		if reflect.DeepEqual(x, y) {
			continue
		}
		key := names[f.Name]
		if key == "" {
			key = f.Name
		}
		out = append(out, fmt.Sprintf("%s.%s %v → %v", prefix, key, x, y))
	}
	return out
}

func limitChanges(cur, next config.Limits) []string {
	return fieldChanges("limits", cur, next, limitKeys)
}

func keepaliveChanges(cur, next []config.Listener) []string {
	var out []string
	for i := range cur {
		a, b := cur[i], next[i]
		if a.Keepalive != b.Keepalive || a.KeepaliveInterval != b.KeepaliveInterval || a.PingTimeout != b.PingTimeout {
			out = append(out, fmt.Sprintf("listen %q keepalive %s/%s/%s → %s/%s/%s", a.Name,
				cmp.Or(a.Keepalive, "whitespace"), a.KeepaliveInterval, a.PingTimeout,
				cmp.Or(b.Keepalive, "whitespace"), b.KeepaliveInterval, b.PingTimeout))
		}
	}
	return out
}

func hostChanges(cur, next []config.Host) []string {
	was := map[string]config.Host{}
	for _, h := range cur {
		was[h.Name] = h
	}
	var out []string
	for _, h := range next {
		old, ok := was[h.Name]
		if !ok {
			out = append(out, fmt.Sprintf("host %q added", h.Name))
			continue
		}
		out = append(out, fieldChanges(fmt.Sprintf("host %q", h.Name), old, h, hostKeys)...)
	}
	return out
}

// reloadComponents applies changed component secrets and replace
// settings (new handshakes use them; connected components stay), and
// reports whether it did. A changed set of domains needs a restart.
func (s *Server) reloadComponents(cur, next []config.Component, res *ReloadResult) bool {
	if reflect.DeepEqual(cur, next) {
		return false
	}
	same := len(cur) == len(next) && s.comps != nil
	for i := 0; same && i < len(cur); i++ {
		same = cur[i].Name == next[i].Name
	}
	if same {
		if err := s.comps.Update(componentSpecs(next)); err == nil {
			res.Applied = append(res.Applied, "component secrets and replace settings")
			return true
		}
	}
	res.NeedRestart = append(res.NeedRestart, "component (domains added or removed)")
	return false
}

func sameCert(a, b tls.Certificate) bool {
	if len(a.Certificate) != len(b.Certificate) {
		return false
	}
	for i := range a.Certificate {
		if string(a.Certificate[i]) != string(b.Certificate[i]) {
			return false
		}
	}
	return true
}
