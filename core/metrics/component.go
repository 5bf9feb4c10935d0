package metrics

import "github.com/prometheus/client_golang/prometheus"

// componentMetrics are the external components' (XEP-0114). There are
// few components, so the label lookups per stanza are affordable.
type componentMetrics struct {
	handshakes map[string]prometheus.Counter // by result, resolved once
	connected  *prometheus.GaugeVec
	stanzas    *prometheus.CounterVec
}

func newComponentMetrics(f factory) componentMetrics {
	hs := f.counterVec(prometheus.CounterOpts{Name: "koi_component_handshakes_total", Help: "Handshakes of external components (XEP-0114) by result: success, failure (wrong secret, unknown domain, malformed), refused (throttled, or the domain already connected)."}, "result")
	m := componentMetrics{handshakes: map[string]prometheus.Counter{}}
	for _, res := range []string{"success", "failure", "refused"} {
		m.handshakes[res] = hs.WithLabelValues(res)
	}
	m.connected = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "koi_component_connected", Help: "1 while an external component serves the domain, 0 once it disconnected."}, []string{"domain"})
	f.register(m.connected)
	m.stanzas = f.counterVec(prometheus.CounterOpts{Name: "koi_component_stanzas_total", Help: "Stanzas from (in) and queued to (out) external components, by domain, direction and element."}, "domain", "direction", "type")
	return m
}

// ComponentHandshake counts a component handshake by result; another
// result counts as a failure.
func (r *Registry) ComponentHandshake(result string) {
	c, ok := r.comp.handshakes[result]
	if !ok {
		c = r.comp.handshakes["failure"]
	}
	c.Inc()
}

// ComponentConnected records a component domain going up or down.
func (r *Registry) ComponentConnected(domain string, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	r.comp.connected.WithLabelValues(domain).Set(v)
}

// ComponentStanza counts a stanza from (in) or to a component.
func (r *Registry) ComponentStanza(domain string, in bool, local string) {
	dir := "out"
	if in {
		dir = "in"
	}
	r.comp.stanzas.WithLabelValues(domain, dir, kinds[kindIndex(local)]).Inc()
}
