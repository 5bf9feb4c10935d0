package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/koi-im/koi/core/admin"
	"github.com/koi-im/koi/core/config"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/metrics"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/pluginhost"
	"github.com/koi-im/koi/core/router"
)

// adminUsers manages accounts for the admin API the way koictl does, and
// ends the sessions of a deleted account.
type adminUsers struct {
	hosts  func() []*modules.Host // the hosts served now
	router *router.Router
}

func (u adminUsers) Hosts() []string {
	hosts := u.hosts()
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = h.Name
	}
	return out
}

func (u adminUsers) host(domain string) (*modules.Host, error) {
	for _, h := range u.hosts() {
		if strings.EqualFold(h.Name, domain) {
			return h, nil
		}
	}
	return nil, fmt.Errorf("host %s is not configured", domain)
}

func (u adminUsers) ListUsers(ctx context.Context, host string) ([]string, string, error) {
	h, err := u.host(host)
	if err != nil {
		return nil, "", err
	}
	ls, err := h.Auth.ListEach(ctx)
	if err != nil {
		return nil, "", err
	}
	var users, unlisted []string
	for _, l := range ls {
		if !l.Listed {
			unlisted = append(unlisted, l.Backend)
			continue
		}
		for _, name := range l.Users {
			users = append(users, name+"@"+h.Name)
		}
	}
	slices.Sort(users)
	note := ""
	if len(unlisted) > 0 {
		note = "not listed: the accounts in plugin " + strings.Join(unlisted, ", ") + " (read-only, cannot list them)"
	}
	return slices.Compact(users), note, nil
}

func (u adminUsers) UserExists(ctx context.Context, a jid.JID) (bool, error) {
	h, err := u.host(a.Domain())
	if err != nil {
		return false, err
	}
	return h.Auth.UserExists(ctx, a.Local())
}

func (u adminUsers) CreateUser(ctx context.Context, a jid.JID, password string) error {
	h, err := u.host(a.Domain())
	if err != nil {
		return err
	}
	return h.Auth.Create(ctx, a.Local(), password)
}

func (u adminUsers) SetPassword(ctx context.Context, a jid.JID, password string) error {
	h, err := u.host(a.Domain())
	if err != nil {
		return err
	}
	if err := h.Auth.SetPassword(ctx, a.Local(), password); err != nil {
		return err
	}
	if err := modules.RevokeTokens(ctx, h, a.String()); err != nil {
		return fmt.Errorf("password changed, but the FAST tokens remain: %w", err)
	}
	return nil
}

func (u adminUsers) CheckPassword(ctx context.Context, a jid.JID, password string) (bool, error) {
	h, err := u.host(a.Domain())
	if err != nil {
		return false, err
	}
	return h.Auth.CheckPassword(ctx, a.Local(), password)
}

func (u adminUsers) DeleteUser(ctx context.Context, a jid.JID) error {
	h, err := u.host(a.Domain())
	if err != nil {
		return err
	}
	if err := h.Auth.Delete(ctx, a.Local()); err != nil {
		return err
	}
	for _, s := range u.router.Sessions(a) {
		s.Close("not-authorized", "account deleted")
	}
	if err := modules.RemoveAccountData(ctx, h, a.String()); err != nil {
		return fmt.Errorf("account deleted, but some of its data remains: %w", err)
	}
	return nil
}

// adminSessions lists and ends router sessions.
type adminSessions struct{ router *router.Router }

func (a adminSessions) Sessions(host string) []admin.Session {
	var out []admin.Session
	for _, s := range a.router.All() {
		if host != "" && !strings.EqualFold(s.JID().Domain(), host) {
			continue
		}
		st := s.State()
		as := admin.Session{JID: s.JID().String(), Available: st.Available, Priority: st.Priority}
		if p := st.Presence; p != nil {
			if e := p.Child(p.Space, "show"); e != nil {
				as.Show = e.Text()
			}
			if e := p.Child(p.Space, "status"); e != nil {
				as.Status = e.Text()
			}
		}
		out = append(out, as)
	}
	slices.SortFunc(out, func(x, y admin.Session) int { return strings.Compare(x.JID, y.JID) })
	return out
}

func (a adminSessions) Kick(full jid.JID, text string) bool {
	s := a.router.Session(full)
	if s == nil {
		return false
	}
	s.Close("policy-violation", text)
	return true
}

// adminPlugins reports the plugin host's plugins.
type adminPlugins struct{ ph *pluginhost.Host }

func (a adminPlugins) Plugins() []admin.Plugin {
	var out []admin.Plugin
	for _, b := range a.ph.Backends() {
		out = append(out, admin.Plugin{Name: b.Name(), Healthy: b.Healthy(), PID: b.PID()})
	}
	return out
}

func (a adminPlugins) RestartPlugin(name string) bool {
	b, ok := a.ph.Backend(name)
	if ok {
		b.Restart()
	}
	return ok
}

// adminCounters reads the metrics registry for the admin page's graph.
type adminCounters struct{ reg *metrics.Registry }

func (a adminCounters) Counters() admin.Counters {
	c := a.reg.Counters()
	return admin.Counters{
		ConnectionsOpen: c.ConnectionsOpen, ConnectionsTotal: c.ConnectionsTotal,
		Logins: c.Logins, StanzasIn: c.StanzasIn, StanzasOut: c.StanzasOut,
	}
}

// serveAdmin starts the admin API's listener, if configured; the returned
// function stops it. reg is the registry the connections report to.
func (s *Server) serveAdmin(cfg *config.Config, tlsCfg *tls.Config, hosts func() []*modules.Host, mods *modules.Server, rt *router.Router, ph *pluginhost.Host, reg *metrics.Registry) (func(), error) {
	ac := cfg.Admin
	if ac.Address == "" {
		return func() {}, nil
	}
	l, err := net.Listen("tcp", ac.Address)
	if err != nil {
		return nil, fmt.Errorf("admin.address: %w", err)
	}
	scheme := "http"
	if ac.TLS {
		l = tls.NewListener(l, tlsCfg)
		scheme = "https"
	}
	log := s.log.Named("admin")
	var counters admin.CounterReader
	if reg != nil {
		counters = adminCounters{reg}
	}
	h := admin.Handler(admin.Config{
		Token: ac.Token, Version: s.version, Started: time.Now(), Log: log,
		Users: adminUsers{hosts, rt}, Sessions: adminSessions{rt}, Rosters: mods, Messages: adminMessages{mods, rt},
		Plugins: adminPlugins{ph}, Counters: counters,
		Check: func(ctx context.Context) ([]string, []string, error) {
			return s.checkConfigFile(ctx)
		},
		Reload: func(ctx context.Context) ([]string, []string, error) {
			r, err := s.Reload(ctx)
			return r.Applied, r.NeedRestart, err
		},
	})
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	go func() {
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin API listener failed", "error", err)
		}
	}()
	log.Info("admin API listening", "address", l.Addr().String(), "url", scheme+"://"+l.Addr().String()+"/api/v1/",
		"page", scheme+"://"+l.Addr().String()+"/admin/")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
	}, nil
}

// checkConfigFile checks the configuration file on disk, as check-config
// does: what a restart would find.
func (s *Server) checkConfigFile(ctx context.Context) (problems, warnings []string, err error) {
	if s.ConfigPath == "" {
		return nil, nil, errors.New("koi was not started from a configuration file")
	}
	cfg, err := config.Load(s.ConfigPath, os.Environ())
	var probs config.Errors
	switch {
	case errors.As(err, &probs):
		for _, p := range probs {
			problems = append(problems, config.Errors{p}.Error())
		}
		return problems, nil, nil
	case err != nil:
		return []string{err.Error()}, nil, nil
	}
	ps, ws := Check(ctx, cfg)
	for _, p := range ps {
		problems = append(problems, config.Errors{p}.Error())
	}
	for _, w := range ws {
		warnings = append(warnings, config.Errors{w}.Error())
	}
	return problems, warnings, nil
}
