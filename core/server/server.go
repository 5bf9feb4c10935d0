// Package server assembles koi from its configuration: the plugin host,
// the virtual hosts with their backends, the router, the feature modules
// and the client listeners.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/adhoc"
	"github.com/koi-im/koi/core/admission"
	"github.com/koi-im/koi/core/auth"
	"github.com/koi-im/koi/core/blocking"
	"github.com/koi-im/koi/core/c2s"
	"github.com/koi-im/koi/core/component"
	"github.com/koi-im/koi/core/config"
	"github.com/koi-im/koi/core/contactinfo"
	"github.com/koi-im/koi/core/extdisco"
	"github.com/koi-im/koi/core/fast"
	"github.com/koi-im/koi/core/jid"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/pluginhost"
	"github.com/koi-im/koi/core/pubsub"
	"github.com/koi-im/koi/core/push"
	"github.com/koi-im/koi/core/retraction"
	"github.com/koi-im/koi/core/router"
	"github.com/koi-im/koi/core/sasl"
	"github.com/koi-im/koi/core/sdnotify"
	"github.com/koi-im/koi/core/throttle"
	"github.com/koi-im/koi/core/websocket"
	"github.com/koi-im/koi/core/xmlstream"
	"github.com/koi-im/koi/sdk"
	"github.com/koi-im/koi/sdk/memory"
)

// Server is a running koi.
type Server struct {
	cfg     *config.Config
	log     hclog.Logger
	version string
	// ConfigPath is the file cfg was read from; the admin API's config
	// check reads it again.
	ConfigPath string
	reloadMu   sync.Mutex
	certs      *certStore        // set by Run; Reload swaps the certificate
	live       *live             // set by Run once serving; Reload changes it
	comps      *component.Server // set by Run when components are configured; Reload updates their secrets
	// Notify tells a service manager (systemd, Type=notify) when koi is
	// ready and when it stops; nil when there is none.
	Notify *sdnotify.Notifier
}

// New prepares a server for cfg.
func New(cfg *config.Config, log hclog.Logger, version string) *Server {
	return &Server{cfg: cfg, log: log, version: version}
}

// PluginSpecs turns the plugin blocks into plugin host specifications.
func PluginSpecs(cfg *config.Config, only map[string]bool) []pluginhost.Spec {
	names := make([]string, 0, len(cfg.Plugins))
	for n := range cfg.Plugins {
		if only == nil || only[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	specs := make([]pluginhost.Spec, 0, len(names))
	for _, n := range names {
		p := cfg.Plugins[n]
		var reattach *pluginhost.Reattach
		if r := p.Reattach; r != nil {
			reattach = &pluginhost.Reattach{Pid: r.Pid, Network: r.Network, Address: r.Address, ProtocolVersion: r.ProtocolVersion}
		}
		specs = append(specs, pluginhost.Spec{
			Name: n, Command: p.Command, Args: p.Args, SHA256: p.SHA256,
			Config: p.Config, CallTimeout: p.CallTimeout, Dir: p.Dir, Reattach: reattach,
		})
	}
	return specs
}

// BuildHosts binds each host's features to the started plugins, checking
// that every plugin serves what the host asks of it.
func BuildHosts(cfg *config.Config, ph *pluginhost.Host, log hclog.Logger) ([]*modules.Host, error) {
	return buildHosts(cfg, ph.Backend, log)
}

// buildHosts is BuildHosts with the plugins of backend: those running, or
// those a reload's plan is about to run.
func buildHosts(cfg *config.Config, backend func(name string) (*pluginhost.Backend, bool), log hclog.Logger) ([]*modules.Host, error) {
	problems := HostProblems(cfg, func(name string) (sdk.Capabilities, bool) {
		b, ok := backend(name)
		if !ok {
			return sdk.Capabilities{}, false
		}
		return b.Capabilities(), true
	})
	if len(problems) > 0 {
		return nil, problems
	}
	var hosts []*modules.Host
	for _, hc := range cfg.Hosts {
		key := func(k string) string { return fmt.Sprintf("host %q.%s", hc.Name, k) }
		get := func(k, name string, serves func(sdk.Capabilities) sdk.Access) (*pluginhost.Backend, sdk.Access) {
			if name == "" {
				return nil, sdk.AccessNone
			}
			b, ok := backend(name)
			if !ok {
				problems = append(problems, config.Problem{Key: key(k), Msg: fmt.Sprintf("plugin %q is not running", name)})
				return nil, sdk.AccessNone
			}
			// HostProblems made sure the plugin serves what it is named for.
			return b, serves(b.Capabilities())
		}
		h := &modules.Host{
			Name: hc.Name, Registration: hc.Registration, PasswordChange: hc.PasswordChange, OfflineLimit: hc.OfflineLimit,
		}
		for _, a := range hc.Admins {
			if j, err := jid.Parse(a); err == nil { // the config checked it
				h.Admins = append(h.Admins, j.Bare().String())
			}
		}
		var chain []auth.Backend
		for _, name := range hc.Auth {
			if b, _ := get("auth", name, func(c sdk.Capabilities) sdk.Access { return c.Auth.Access }); b != nil {
				chain = append(chain, b)
			}
		}
		h.Auth = auth.NewChain(hc.Name, chain)
		if b, a := get("roster", hc.Roster, func(c sdk.Capabilities) sdk.Access { return c.Roster }); b != nil {
			h.Roster = modules.Feature[modules.RosterBackend]{Backend: b, On: true, Writable: a.Writable()}
		}
		// Read only, whatever the plugin could do (see hostFeatures).
		if b, _ := get("shared_roster", hc.SharedRoster, func(c sdk.Capabilities) sdk.Access { return c.Roster }); b != nil {
			h.SharedRoster = modules.Feature[sdk.Roster]{Backend: b, On: true}
		}
		if b, a := get("offline", hc.Offline, func(c sdk.Capabilities) sdk.Access { return c.Offline }); b != nil {
			h.Offline = modules.Feature[sdk.Offline]{Backend: b, On: true, Writable: a.Writable()}
		}
		if b, a := get("vcard", hc.VCard, func(c sdk.Capabilities) sdk.Access { return c.VCard }); b != nil {
			h.VCard = modules.Feature[modules.VCardBackend]{Backend: b, On: true, Writable: a.Writable()}
		}
		if b, a := get("private", hc.Private, func(c sdk.Capabilities) sdk.Access { return c.Private }); b != nil {
			h.Private = modules.Feature[modules.PrivateBackend]{Backend: b, On: true, Writable: a.Writable()}
		}
		if b, _ := get("archive", hc.Archive, func(c sdk.Capabilities) sdk.Access { return c.Archive.Access }); b != nil {
			h.Archive = modules.Feature[*modules.Archive]{
				Backend: &modules.Archive{Backend: b, FullText: b.Capabilities().Archive.FullText, Retract: b.Capabilities().Archive.Retract},
				On:      true, Writable: true,
			}
		}
		if b, a := get("blocklist", hc.Blocklist, func(c sdk.Capabilities) sdk.Access { return c.Blocklist }); b != nil {
			h.Blocklist = modules.Feature[modules.BlocklistBackend]{Backend: b, On: true, Writable: a.Writable()}
		}
		if b, a := get("pubsub", hc.PubSub, func(c sdk.Capabilities) sdk.Access { return c.PubSub }); b != nil {
			h.PubSub = modules.Feature[modules.PubSubBackend]{Backend: b, On: true, Writable: a.Writable()}
		}
		if b, a := get("tokens", hc.Tokens, func(c sdk.Capabilities) sdk.Access { return c.Tokens }); b != nil {
			h.Tokens = modules.Feature[sdk.TokensWriter]{Backend: b, On: true, Writable: a.Writable()}
		}
		if hc.Registration && !h.Auth.Writable() && log != nil {
			log.Warn("registration is on but no auth backend can create accounts: requests get <not-allowed/>", "host", hc.Name)
		}
		hosts = append(hosts, h)
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return hosts, nil
}

// c2sHost adapts a module host to what the connection layer needs.
type c2sHost struct {
	h              *modules.Host
	m              *modules.Server
	channelBinding string        // the host's channel_binding setting
	fast           *fast.Manager // nil: no FAST tokens on this host
}

// FAST gives SASL2 the host's token manager (nil when tokens are off).
func (a c2sHost) FAST() *fast.Manager { return a.fast }

func (a c2sHost) Name() string           { return a.h.Name }
func (a c2sHost) SASLStore() sasl.Store  { return a.h.Auth }
func (a c2sHost) SCRAM() bool            { return a.h.Auth.SCRAM() }
func (a c2sHost) ChannelBinding() string { return a.channelBinding }
func (a c2sHost) RegistrationOpen() bool {
	return a.h.Registration && a.h.Auth.Writable()
}
func (a c2sHost) PreAuthIQ(ctx context.Context, iq *xmlstream.Element, remote string) *xmlstream.Element {
	return a.m.PreAuthIQ(ctx, a.h, iq)
}

// Run starts everything and serves until ctx is cancelled, then shuts
// down: streams closed with <system-shutdown/>, plugins stopped.
func (s *Server) Run(ctx context.Context) error {
	cfg := s.cfg
	raiseFileLimit(s.log)

	names := []string{}
	for _, h := range cfg.Hosts {
		names = append(names, h.Name)
	}
	names = append(names, uploadDomains(cfg)...)
	// A component on a TLS listener may check the certificate against
	// its own domain (slixmpp does).
	for _, c := range cfg.Components {
		names = append(names, c.Name)
	}
	names = append(names, "localhost", "127.0.0.1")
	cert, err := loadOrCreateCert(s.log, cfg.TLS.CertFile, cfg.TLS.KeyFile, dedupe(names))
	if err != nil {
		return err
	}
	certs := &certStore{}
	certs.p.Store(&cert)
	tlsCfg := tlsConfig(certs, cfg.TLS)
	s.reloadMu.Lock()
	s.certs = certs
	s.reloadMu.Unlock()

	ph := pluginhost.New(s.log.Named("plugin"), PluginSpecs(cfg, nil))
	reg := newMetrics(cfg.Metrics, cfg.Admin.Address != "", ph)
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	err = ph.Start(startCtx)
	cancel()
	if err != nil {
		ph.Close(context.Background())
		return fmt.Errorf("starting plugins: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
		defer cancel()
		if err := ph.Close(cctx); err != nil {
			s.log.Warn("plugins did not stop cleanly", "error", err)
		}
	}()

	hosts, err := BuildHosts(cfg, ph, s.log)
	if err != nil {
		return err
	}
	lv := &live{ph: ph, fastKey: fastKeyPath(cfg), archives: newArchiveWriters(cfg.Archive, s.log.Named("archive")),
		keepalives: map[string]*c2s.KeepalivePolicy{}, webs: map[string]*websocket.Server{}}
	archives, err := lv.archives.prepare(hosts)
	if err != nil {
		return err
	}
	archives.commit()
	// Deferred after the plugin host's Close, so it runs before it: the
	// writers flush their queues while the plugins are still there.
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
		defer cancel()
		s.reloadMu.Lock()
		defer s.reloadMu.Unlock()
		lv.archives.closeAll(cctx)
	}()
	rt := router.New()
	mods := modules.New(s.log.Named("im"), rt, hosts, s.version)
	lv.mods = mods
	blk := blocking.Register(s.log.Named("blocking"), mods, rt)
	blk.SetReports(spamReports(s.log.Named("spamreport"), mods))
	cl, leaveCluster, err := joinCluster(ctx, cfg.Cluster, rt, mods, blk, s.log.Named("cluster"))
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
		defer cancel()
		leaveCluster(cctx)
	}()
	pep := startPubSub(cfg.PubSub, hosts, mods, rt, s.log.Named("pubsub"))
	defer pep.Close()
	contactinfo.Register(cfg.Contact, mods)
	adhoc.Register(adhoc.Config{
		Log: s.log.Named("adhoc"), IsAdmin: isAdmin(mods),
		Users: adminUsers{mods.Hosts, rt}, Online: adhocOnline{adminSessions{rt}, rt},
	}, mods)
	tombs := retraction.New(retraction.Config{Log: s.log.Named("retraction"), Archive: accountArchives(mods)})
	mods.SetRetractions(tombs)
	defer func() { // before the archives close
		cctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
		defer cancel()
		_ = tombs.Wait(cctx)
	}()
	if tc := cfg.TURN; tc.Host != "" {
		extdisco.Register(extdisco.Config{Host: tc.Host, Port: tc.Port, TLSPort: tc.TLSPort, Secret: tc.Secret, TTL: tc.TTL}, mods)
	}
	// A message for a session whose connection dropped, waiting under
	// stream management to be resumed, goes to the phone's push service.
	var onDetached func(*router.Session, *xmlstream.Element)
	if pc := cfg.Push; pc.Enabled {
		ps := push.Register(s.log.Named("push"), push.Config{
			IncludeBody: pc.IncludeBody, IncludeSender: pc.IncludeSender, BodyPlaceholder: pc.BodyPlaceholder,
			MaxRegistrations: pc.MaxRegistrations, MaxErrors: pc.MaxErrors, Interval: pc.Interval,
		}, mods, rt)
		defer ps.Close()
		onDetached = func(sess *router.Session, el *xmlstream.Element) {
			if el.Local != "message" || !push.Important(el) {
				return
			}
			to := sess.JID()
			go func() { // the hook runs on the sender's goroutine: never wait there
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				ps.Notify(ctx, to, el)
			}()
		}
		for _, h := range hosts {
			if !h.Private.On || !h.Private.Writable {
				s.log.Warn("push registrations are kept in memory only: the host has no writable private storage", "host", h.Name)
			}
		}
	}
	stopMUC, err := startMUC(ctx, cfg, ph, mods, cl, s.log.Named("muc"))
	if err != nil {
		return err
	}
	set, err := lv.newHostSet(cfg, hosts)
	if err != nil {
		return err
	}
	lv.hosts.Store(set)
	lim := cfg.Limits
	if err := newLimits(lv, lim); err != nil {
		return err
	}
	handshakes := lv.handshakes
	observer, err := startMetrics(ctx, reg, cfg.Metrics, lv.currentHosts, s.log.Named("metrics"))
	if err != nil {
		return err
	}
	// Wrong component secrets have the limits of wrong passwords but a
	// count of their own: behind a reverse proxy on loopback, clients'
	// failures must not lock out a gateway on loopback, nor the reverse.
	comps, err := newComponents(cfg, mods, throttle.NewGuard(guardConfig(lim)), reg, s.log.Named("component"))
	if err != nil {
		return err
	}
	s.reloadMu.Lock()
	s.comps = comps
	s.reloadMu.Unlock()
	srv := c2s.New(c2s.Config{
		Log:               s.log.Named("c2s"),
		TLS:               tlsCfg,
		Limits:            xmlstream.Limits{MaxStanzaBytes: lim.MaxStanzaBytes, MaxDepth: lim.MaxDepth},
		IdleTimeout:       lim.IdleTimeout,
		KeepaliveInterval: lim.KeepaliveInterval,
		SendQueue:         lim.SendQueue,
		Host:              lv.host,
		Router:            rt,
		Handler:           mods,
		Guard:             lv.guard,
		Registrations:     lv.registrations,
		ConnectionRate:    lv.connRate,
		LoginRate:         lv.loginRate,
		Handshakes:        handshakes,
		SM: c2s.SMConfig{
			Enabled:          cfg.SM.Enabled,
			ResumeTimeout:    cfg.SM.ResumeTimeout,
			MaxQueue:         cfg.SM.MaxQueue,
			RequestEvery:     cfg.SM.RequestAckEvery,
			OnDetachedStanza: onDetached,
			Cluster:          smCluster(cl),
		},
		Undelivered: mods,
		Carbons:     mods,
		Observer:    observer,
	})
	lv.c2s = srv
	if err := exportParked(reg, srv); err != nil {
		return err
	}
	if err := exportCluster(reg, cl); err != nil {
		return err
	}
	if err := serveHandovers(ctx, cl, srv); err != nil {
		return err
	}

	// Before the client listeners: a client that logs in can discover
	// the services at once.
	stopUploads, err := startUploads(cfg, mods, tlsCfg, s.log.Named("upload"))
	if err != nil {
		return err
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
		defer cancel()
		stopUploads(uctx)
	}()
	var listeners []net.Listener
	closeAll := func() {
		for _, l := range listeners {
			l.Close()
		}
	}
	for _, lc := range cfg.Listeners {
		l, err := net.Listen("tcp", lc.Address)
		if err != nil {
			closeAll()
			return fmt.Errorf("listen %q.address: %w", lc.Name, err)
		}
		listeners = append(listeners, l)
	}
	var wg sync.WaitGroup
	var webs []*websocket.Server
	for i, lc := range cfg.Listeners {
		l := listeners[i]
		ka := c2s.NewKeepalivePolicy(listenerKeepalive(lc, lim))
		lv.keepalives[lc.Name] = ka
		if lc.Type == "websocket" {
			ws := newWebSocket(lc, srv, tlsCfg, lim.MaxStanzaBytes, ka, handshakes, s.log.Named("websocket"))
			webs = append(webs, ws)
			lv.webs[lc.Name] = ws
			s.log.Info("listening", "listener", lc.Name, "type", lc.Type, "address", l.Addr().String(), "path", lc.Path, "tls", lc.TLS)
			// The same per-address connection rate as the c2s listeners,
			// counted at accept: before any TLS or HTTP work.
			rl := srv.RateLimitListener(l)
			wg.Go(func() {
				if err := ws.Serve(rl); err != nil && !errors.Is(err, net.ErrClosed) {
					s.log.Error("listener failed", "listener", lc.Name, "error", err)
				}
			})
			continue
		}
		if lc.Type == "component" {
			var ctls *tls.Config
			if lc.TLS {
				ctls = tlsCfg
			}
			s.log.Info("listening", "listener", lc.Name, "type", lc.Type, "address", l.Addr().String(), "tls", lc.TLS)
			if exposedPlaintext(lc) {
				s.log.Warn(exposedWarning, "listener", lc.Name, "address", lc.Address)
			}
			wg.Go(func() {
				if err := comps.Serve(l, ctls, componentKeepalive(lc, lim)); err != nil && !errors.Is(err, net.ErrClosed) {
					s.log.Error("listener failed", "listener", lc.Name, "error", err)
				}
			})
			continue
		}
		mode := c2s.TLSDirect
		if lc.Type == "c2s" {
			switch lc.StartTLS {
			case "optional":
				mode = c2s.TLSOptional
			case "disabled":
				mode = c2s.TLSDisabled
			default:
				mode = c2s.TLSRequired
			}
		}
		s.log.Info("listening", "listener", lc.Name, "type", lc.Type, "address", l.Addr().String(), "starttls", lc.StartTLS)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.ServeListenerPolicy(l, mode, ka); err != nil && !errors.Is(err, net.ErrClosed) {
				s.log.Error("listener failed", "listener", lc.Name, "error", err)
			}
		}()
	}
	if cfg.Server.Pprof != "" {
		stop := s.servePprof(cfg.Server.Pprof)
		defer stop()
	}
	stopAdmin, err := s.serveAdmin(cfg, tlsCfg, lv.currentHosts, mods, rt, ph, reg)
	if err != nil {
		return err
	}
	defer stopAdmin()
	s.reloadMu.Lock()
	s.live = lv
	s.reloadMu.Unlock()
	defer func() {
		s.reloadMu.Lock()
		s.live = nil
		s.reloadMu.Unlock()
	}()
	s.log.Info("koi is ready", "version", s.version, "hosts", len(hosts))
	s.notify(fmt.Sprintf("STATUS=serving %d hosts on %d listeners", len(hosts), len(cfg.Listeners)), "READY=1")
	if every := s.Notify.WatchdogInterval(); every > 0 {
		stopWatchdog := s.feedWatchdog(every)
		defer stopWatchdog()
	}

	<-ctx.Done()
	s.log.Info("shutting down")
	s.notify("STOPPING=1", "STATUS=shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	stopMUC(sctx)
	// The WebSocket listeners stop accepting and wait for their streams,
	// which the c2s server closes like all others: <system-shutdown/>,
	// then <close/> on a WebSocket.
	var wsWG sync.WaitGroup
	for _, ws := range webs {
		wsWG.Go(func() {
			if err := ws.Shutdown(sctx); err != nil {
				s.log.Warn("some WebSocket connections did not close in time", "error", err)
			}
		})
	}
	if comps != nil {
		// Components get <system-shutdown/> and </stream:stream> like
		// clients, at the same time.
		wsWG.Go(func() {
			if err := comps.Shutdown(sctx); err != nil {
				s.log.Warn("some component connections did not close in time", "error", err)
			}
		})
	}
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("some connections did not close in time", "error", err)
	}
	wsWG.Wait()
	wg.Wait()
	return nil
}

// startPubSub turns on PEP for every host: a host without a pubsub backend
// keeps its nodes in memory, which lasts until koi stops.
func startPubSub(pc config.PubSub, hosts []*modules.Host, mods *modules.Server, rt *router.Router, log hclog.Logger) *pubsub.PEP {
	for _, h := range hosts {
		if !h.PubSub.On {
			log.Warn("PEP nodes (avatars, bookmarks, OMEMO keys) are kept in memory only: the host has no pubsub backend", "host", h.Name)
			h.PubSub = modules.Feature[modules.PubSubBackend]{Backend: memory.NewPubSub(), On: true, Writable: true}
		}
	}
	lim := pubsub.Limits{MaxItems: pc.MaxItems, DefaultMaxItems: pc.DefaultMaxItems, MaxNodes: pc.MaxNodes, MaxItemBytes: pc.MaxItemBytes}
	pep := pubsub.RegisterPEP(log, lim, mods, rt, pubsub.NewCaps())
	if pc.Service {
		for _, h := range hosts {
			if _, err := pubsub.RegisterService(log.Named("service"), lim, mods, h.Name); err != nil {
				log.Warn("pubsub service not served", "host", h.Name, "error", err)
			}
		}
	}
	return pep
}

// notify sends state lines to the service manager; a failure is logged,
// never fatal (koi serves whether or not systemd hears it).
func (s *Server) notify(state ...string) {
	if err := s.Notify.Notify(state...); err != nil {
		s.log.Warn("cannot notify the service manager", "error", err)
	}
}

// feedWatchdog sends WATCHDOG=1 every interval until the returned function
// is called.
func (s *Server) feedWatchdog(every time.Duration) func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				s.notify("WATCHDOG=1")
			case <-done:
				return
			}
		}
	}()
	return func() { close(done) }
}

// newWebSocket sets up the RFC 7395 listener lc in front of the c2s
// server; with tls = true it serves wss with the server's certificate.
func newWebSocket(lc config.Listener, srv *c2s.Server, tlsCfg *tls.Config, maxStanza int64, ka *c2s.KeepalivePolicy, handshakes *admission.Pool, log hclog.Logger) *websocket.Server {
	cfg := websocket.Config{
		Log:             log.With("listener", lc.Name),
		Path:            lc.Path,
		PublicURL:       lc.PublicURL,
		Origins:         lc.Origins,
		MaxMessageBytes: maxStanza,
		Streams:         srv,
		Keepalive:       ka,
		Handshakes:      handshakes,
	}
	if lc.TLS {
		cfg.TLS = tlsCfg
	}
	return websocket.New(cfg)
}

// servePprof exposes the Go profiler on addr (server.pprof); off unless
// configured, since it reveals internals.
func (s *Server) servePprof(addr string) func() {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		s.log.Info("profiler listening", "address", addr)
		if err := hs.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("profiler failed", "error", err)
		}
	}()
	return func() { hs.Close() }
}

// listenerKeepalive is a c2s listener's keepalive policy; its interval
// defaults to limits.keepalive_interval.
func listenerKeepalive(lc config.Listener, lim config.Limits) c2s.Keepalive {
	ka := c2s.Keepalive{Mode: c2s.KeepaliveWhitespace, Interval: lc.KeepaliveInterval, Timeout: lc.PingTimeout}
	if ka.Interval == 0 {
		ka.Interval = lim.KeepaliveInterval
	}
	if ka.Timeout == 0 {
		ka.Timeout = 30 * time.Second
	}
	switch lc.Keepalive {
	case "ping":
		ka.Mode = c2s.KeepalivePing
	case "off":
		ka.Mode = c2s.KeepaliveOff
	}
	return ka
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
