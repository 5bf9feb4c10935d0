package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/config"
)

// certStore is the certificate every TLS listener serves; a reload swaps
// it, and the next handshake uses the new one (sessions up keep theirs).
type certStore struct {
	p atomic.Pointer[tls.Certificate]
}

func (c *certStore) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.p.Load(), nil }

// ReloadResult says what a reload did.
type ReloadResult struct {
	// Applied lists what changed and took effect ("log.level", "tls
	// certificate"...).
	Applied []string
	// NeedRestart lists the changed config sections a running koi cannot
	// take over; they take effect at the next start.
	NeedRestart []string
}

// Reload reads the config file again and applies what can change without
// dropping sessions: the log level and the TLS certificate (new handshakes
// serve the new one, for a renewed certificate). What else changed is
// reported, not applied. A file with problems, or a certificate that does
// not load, changes nothing.
func (s *Server) Reload(ctx context.Context) (ReloadResult, error) {
	var res ReloadResult
	if s.ConfigPath == "" {
		return res, errors.New("koi was not started from a configuration file")
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.certs == nil {
		return res, errors.New("koi is not running yet")
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
	// Everything checked: apply.
	level := next.Log.Level != cur.Log.Level
	if level {
		res.Applied = append(res.Applied, fmt.Sprintf("log.level %s → %s", cur.Log.Level, next.Log.Level))
	}
	if old := s.certs.p.Load(); old == nil || !sameCert(*old, cert) {
		s.certs.p.Store(&cert)
		res.Applied = append(res.Applied, "tls certificate ("+next.TLS.CertFile+")")
	}
	comps := s.reloadComponents(cur.Components, next.Components, &res)
	for _, d := range []struct {
		key       string
		cur, next any
	}{
		{"log.format", cur.Log.Format, next.Log.Format},
		{"listen", cur.Listeners, next.Listeners},
		{"tls (files, versions)", []any{cur.TLS.CertFile, cur.TLS.KeyFile, cur.TLS.MinVersion, cur.TLS.MaxVersion}, []any{next.TLS.CertFile, next.TLS.KeyFile, next.TLS.MinVersion, next.TLS.MaxVersion}},
		{"plugin", cur.Plugins, next.Plugins},
		{"host", cur.Hosts, next.Hosts},
		{"limits", cur.Limits, next.Limits},
		{"stream_management", cur.SM, next.SM},
		{"server", cur.Server, next.Server},
		{"archive", cur.Archive, next.Archive},
		{"push", cur.Push, next.Push},
		{"admin", cur.Admin, next.Admin},
		{"metrics", cur.Metrics, next.Metrics},
	} {
		if !reflect.DeepEqual(d.cur, d.next) {
			res.NeedRestart = append(res.NeedRestart, d.key)
		}
	}
	// What was applied is the running config now; the rest is not.
	kept := *cur
	kept.Log.Level = next.Log.Level
	if comps {
		kept.Components = next.Components
	}
	s.cfg = &kept
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
