package server

import (
	"fmt"
	"path/filepath"
	"runtime"
	"sync/atomic"

	"github.com/koi-im/koi/core/admission"
	"github.com/koi-im/koi/core/c2s"
	"github.com/koi-im/koi/core/config"
	"github.com/koi-im/koi/core/fast"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/pluginhost"
	"github.com/koi-im/koi/core/throttle"
	"github.com/koi-im/koi/core/websocket"
	"github.com/koi-im/koi/core/xmlstream"
)

// live is the part of a running koi that a reload changes in place: the
// plugins, the hosts' backends and settings, and the limits. Run makes
// it; Reload changes it under the server's reload lock.
type live struct {
	ph       *pluginhost.Host
	mods     *modules.Server
	c2s      *c2s.Server
	archives *archiveWriters
	fastKey  string // the FAST key file, read when a host first needs it

	hosts atomic.Pointer[hostSet] // read by every new stream

	// The limits: each object takes new values in place.
	guard         *throttle.Guard
	registrations *throttle.Limiter
	connRate      *throttle.Limiter
	loginRate     *throttle.Limiter
	handshakes    *admission.Pool
	keepalives    map[string]*c2s.KeepalivePolicy // by listener name
	webs          map[string]*websocket.Server    // by listener name
}

// hostSet is one version of the served hosts, swapped whole.
type hostSet struct {
	hosts    []*modules.Host // in file order
	adapters map[string]c2s.Host
}

// host returns the c2s view of the host serving domain, nil if none (an
// untyped nil: c2s compares it with nil).
func (l *live) host(domain string) c2s.Host {
	if a, ok := l.hosts.Load().adapters[domain]; ok {
		return a
	}
	return nil
}

// currentHosts returns the hosts served now, in file order.
func (l *live) currentHosts() []*modules.Host { return l.hosts.Load().hosts }

// newHostSet makes the c2s adapters of hosts, with their FAST token
// managers; the FAST key is loaded (or made) the first time a host needs
// it.
func (l *live) newHostSet(cfg *config.Config, hosts []*modules.Host) (*hostSet, error) {
	hc := map[string]config.Host{}
	for _, h := range cfg.Hosts {
		hc[h.Name] = h
	}
	set := &hostSet{hosts: hosts, adapters: map[string]c2s.Host{}}
	var key []byte
	for _, h := range hosts {
		c := hc[h.Name]
		a := c2sHost{h: h, m: l.mods, channelBinding: c.ChannelBinding}
		if h.Tokens.On {
			st, ok := h.Tokens.Backend.(fast.Store)
			if !ok || !h.Tokens.Writable {
				return nil, fmt.Errorf("host %q.tokens: the plugin cannot store tokens", h.Name)
			}
			if key == nil {
				var err error
				if key, err = fast.LoadOrCreateKey(l.fastKey); err != nil {
					return nil, err
				}
			}
			m, err := fast.NewManager(st, key, c.TokenLifetime)
			if err != nil {
				return nil, fmt.Errorf("host %q.token_lifetime: %w", h.Name, err)
			}
			a.fast = m
		}
		set.adapters[h.Name] = a
	}
	return set, nil
}

func fastKeyPath(cfg *config.Config) string { return filepath.Join(cfg.Server.DataDir, "fast.key") }

// newLimits makes the limit objects of lim, all present even when a limit
// is off (0), so that a reload can turn it on.
func newLimits(l *live, lim config.Limits) error {
	n, err := handshakeSize(lim)
	if err != nil {
		return err
	}
	if l.handshakes, err = admission.New(n, lim.HandshakeQueue, lim.HandshakeWait); err != nil {
		return fmt.Errorf("limits.handshake_concurrency: %w", err)
	}
	l.guard = throttle.NewGuard(guardConfig(lim))
	l.registrations = throttle.New(lim.RegistrationsPerIP, lim.RegistrationWindow, nil)
	l.connRate = throttle.New(lim.ConnectionsPerIP, lim.RateWindow, nil)
	l.loginRate = throttle.New(lim.LoginsPerIP, lim.RateWindow, nil)
	return nil
}

func guardConfig(lim config.Limits) throttle.GuardConfig {
	return throttle.GuardConfig{
		PerAddress:  lim.AuthFailuresPerIP,
		PerAccount:  lim.AuthFailuresPerAccount,
		Window:      lim.AuthFailureWindow,
		SlowdownMax: lim.AuthSlowdownMax,
	}
}

// handshakeSize is the handshake pool's size: by default half the CPUs
// the Go scheduler runs on, so that the other half stays with established
// sessions during a reconnect storm.
func handshakeSize(lim config.Limits) (int, error) {
	n := lim.HandshakeConcurrency
	if n == 0 {
		n = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if err := admission.Check(n, lim.HandshakeQueue, lim.HandshakeWait); err != nil {
		return 0, fmt.Errorf("limits.handshake_concurrency: %w", err)
	}
	return n, nil
}

func tunables(lim config.Limits) c2s.Tunables {
	return c2s.Tunables{
		Limits:      xmlstream.Limits{MaxStanzaBytes: lim.MaxStanzaBytes, MaxDepth: lim.MaxDepth},
		IdleTimeout: lim.IdleTimeout,
		SendQueue:   lim.SendQueue,
	}
}

// setLimits gives every limit object the values of lim (checked with
// handshakeSize before) and the listeners their keepalive policies.
func (l *live) setLimits(lim config.Limits, listeners []config.Listener) {
	n, _ := handshakeSize(lim)
	_ = l.handshakes.Resize(n, lim.HandshakeQueue, lim.HandshakeWait)
	l.guard.Reconfigure(guardConfig(lim))
	l.registrations.SetLimit(lim.RegistrationsPerIP, lim.RegistrationWindow)
	l.connRate.SetLimit(lim.ConnectionsPerIP, lim.RateWindow)
	l.loginRate.SetLimit(lim.LoginsPerIP, lim.RateWindow)
	l.c2s.SetTunables(tunables(lim))
	for _, lc := range listeners {
		if p := l.keepalives[lc.Name]; p != nil {
			l.c2s.SetKeepalive(p, listenerKeepalive(lc, lim))
		}
		if ws := l.webs[lc.Name]; ws != nil {
			ws.SetMaxMessageBytes(lim.MaxStanzaBytes)
		}
	}
}
