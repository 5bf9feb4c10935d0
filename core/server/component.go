package server

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/core/c2s"
	"github.com/koi-im/koi/core/component"
	"github.com/koi-im/koi/core/config"
	"github.com/koi-im/koi/core/metrics"
	"github.com/koi-im/koi/core/modules"
	"github.com/koi-im/koi/core/xmlstream"
)

// newComponents sets up the external components (XEP-0114) and registers
// each configured domain on the component seam, connected or not, so
// that its stanzas bounce with service-unavailable while it is down. It
// returns nil when no component is configured.
func newComponents(cfg *config.Config, mods *modules.Server, guard component.Guard, reg *metrics.Registry, log hclog.Logger) (*component.Server, error) {
	if len(cfg.Components) == 0 {
		return nil, nil
	}
	hosts := make([]string, 0, len(cfg.Hosts))
	for _, h := range cfg.Hosts {
		hosts = append(hosts, h.Name)
	}
	var obs component.Observer
	if reg != nil {
		obs = reg
	}
	cs, err := component.New(component.Config{
		Log:        log,
		Components: componentSpecs(cfg.Components),
		Hosts:      hosts,
		Router:     mods,
		Limits:     xmlstream.Limits{MaxStanzaBytes: cfg.Limits.MaxStanzaBytes, MaxDepth: cfg.Limits.MaxDepth},
		Guard:      guard,
		Observer:   obs,
	})
	if err != nil {
		return nil, err
	}
	for _, ep := range cs.Endpoints() {
		if err := mods.AddComponent(ep.Domain(), ep); err != nil {
			return nil, fmt.Errorf("component %q: %w", ep.Domain(), err)
		}
	}
	return cs, nil
}

func componentSpecs(cs []config.Component) []component.Spec {
	specs := make([]component.Spec, 0, len(cs))
	for _, c := range cs {
		specs = append(specs, component.Spec{Domain: c.Name, Secret: c.Secret, Replace: c.Replace})
	}
	return specs
}

// componentKeepalive is a component listener's keepalive policy: the keys
// and defaults of the client listeners.
func componentKeepalive(lc config.Listener, lim config.Limits) component.Keepalive {
	ka := listenerKeepalive(lc, lim)
	out := component.Keepalive{Mode: component.KeepaliveWhitespace, Interval: ka.Interval, Timeout: ka.Timeout}
	switch ka.Mode {
	case c2s.KeepalivePing:
		out.Mode = component.KeepalivePing
	case c2s.KeepaliveOff:
		out.Mode = component.KeepaliveOff
	}
	return out
}

// exposedPlaintext reports whether a component listener without TLS may
// be reached from other machines: the protocol carries the handshake and
// all traffic in the clear.
func exposedPlaintext(lc config.Listener) bool {
	if lc.Type != "component" || lc.TLS {
		return false
	}
	host, _, err := net.SplitHostPort(lc.Address)
	if err != nil || host == "localhost" {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err != nil || !a.IsLoopback()
}

// exposedWarning is said of a listener exposedPlaintext reports.
const exposedWarning = "a component listener without TLS reachable from other machines: handshakes and stanzas travel in the clear; bind it to loopback or set tls = true"
