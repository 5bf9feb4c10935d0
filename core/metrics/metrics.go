// Package metrics exports koi's counters in the Prometheus text format on
// an HTTP listener of its own (block metrics, off by default).
//
// The connection layer does not import Prometheus: it calls the small
// c2s.Observer interface, which Registry implements with pre-resolved
// label children, so that a stanza costs a few atomic adds and no map
// lookup or allocation.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// Stanza kinds, the values of the label type.
var kinds = [...]string{"message", "presence", "iq", "other"}

func kindIndex(local string) int {
	switch local {
	case "message":
		return 0
	case "presence":
		return 1
	case "iq":
		return 2
	}
	return 3
}

// Registry holds koi's metrics and the Go runtime's.
type Registry struct {
	reg *prometheus.Registry

	connsOpen   prometheus.Gauge
	connsTotal  prometheus.Counter
	logins      map[string]prometheus.Counter // by result, resolved once
	stanzasIn   [len(kinds)]prometheus.Counter
	stanzasOut  [len(kinds)]prometheus.Counter
	routingTime [len(kinds)]prometheus.Observer

	pluginCalls    *prometheus.CounterVec
	pluginErrors   *prometheus.CounterVec
	pluginLatency  *prometheus.HistogramVec
	pluginRestarts *prometheus.CounterVec

	comp componentMetrics
}

// New returns a Registry with the Go runtime and process collectors.
func New() *Registry {
	r := &Registry{reg: prometheus.NewRegistry()}
	f := newFactory(r.reg)
	r.connsOpen = f.gauge(prometheus.GaugeOpts{Name: "koi_connections_open", Help: "Client connections open now (TCP and WebSocket)."})
	r.connsTotal = f.counter(prometheus.CounterOpts{Name: "koi_connections_total", Help: "Client connections accepted."})
	logins := f.counterVec(prometheus.CounterOpts{Name: "koi_logins_total", Help: "Login attempts by result: success, failure (wrong credentials, bad request), refused (throttled)."}, "result")
	r.logins = map[string]prometheus.Counter{}
	for _, res := range []string{"success", "failure", "refused"} {
		r.logins[res] = logins.WithLabelValues(res)
	}
	in := f.counterVec(prometheus.CounterOpts{Name: "koi_stanzas_in_total", Help: "Stanzas received from bound client sessions, by element."}, "type")
	out := f.counterVec(prometheus.CounterOpts{Name: "koi_stanzas_out_total", Help: "Stanzas queued to client sessions, by element."}, "type")
	lat := f.histogramVec(prometheus.HistogramOpts{
		Name:    "koi_routing_seconds",
		Help:    "Time to handle one stanza from a client: routing, module work and backend calls.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, "type")
	for i, k := range kinds {
		r.stanzasIn[i] = in.WithLabelValues(k)
		r.stanzasOut[i] = out.WithLabelValues(k)
		r.routingTime[i] = lat.WithLabelValues(k)
	}
	r.pluginCalls = f.counterVec(prometheus.CounterOpts{Name: "koi_plugin_calls_total", Help: "Calls to backend plugins, by plugin block and method."}, "plugin", "method")
	r.pluginErrors = f.counterVec(prometheus.CounterOpts{Name: "koi_plugin_errors_total", Help: "Plugin calls that returned an error (the plugin down included), by plugin block and method."}, "plugin", "method")
	r.pluginLatency = f.histogramVec(prometheus.HistogramOpts{
		Name:    "koi_plugin_call_seconds",
		Help:    "Duration of plugin calls, by plugin block.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, "plugin")
	r.pluginRestarts = f.counterVec(prometheus.CounterOpts{Name: "koi_plugin_restarts_total", Help: "Plugin processes started again after they died."}, "plugin")
	r.comp = newComponentMetrics(f)
	f.register(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// ConnOpened counts an accepted client connection.
func (r *Registry) ConnOpened() { r.connsOpen.Inc(); r.connsTotal.Inc() }

// ConnClosed counts a client connection's end.
func (r *Registry) ConnClosed() { r.connsOpen.Dec() }

// Login counts a login attempt by result ("success", "failure",
// "refused"); another result counts as a failure.
func (r *Registry) Login(result string) {
	c, ok := r.logins[result]
	if !ok {
		c = r.logins["failure"]
	}
	c.Inc()
}

// StanzaIn counts a stanza from a client and the time it took to handle.
func (r *Registry) StanzaIn(local string, took time.Duration) {
	i := kindIndex(local)
	r.stanzasIn[i].Inc()
	r.routingTime[i].Observe(took.Seconds())
}

// StanzaOut counts a stanza queued to a client.
func (r *Registry) StanzaOut(local string) { r.stanzasOut[kindIndex(local)].Inc() }

// PluginCall counts a call to a plugin. A plugin call is a gRPC round
// trip (about 0.1 ms), so the label lookups here do not matter.
func (r *Registry) PluginCall(plugin, method string, took time.Duration, err error) {
	r.pluginCalls.WithLabelValues(plugin, method).Inc()
	if err != nil {
		r.pluginErrors.WithLabelValues(plugin, method).Inc()
	}
	r.pluginLatency.WithLabelValues(plugin).Observe(took.Seconds())
}

// PluginRestarted counts a plugin restart.
func (r *Registry) PluginRestarted(plugin string) { r.pluginRestarts.WithLabelValues(plugin).Inc() }

// Counters is a snapshot of the cumulative client counters, the values
// /metrics exports under the same names.
type Counters struct {
	ConnectionsOpen  int64
	ConnectionsTotal uint64
	// Logins is by result: success, failure, refused.
	Logins map[string]uint64
	// StanzasIn and StanzasOut are by element: message, presence, iq,
	// other.
	StanzasIn, StanzasOut map[string]uint64
}

// Counters reads the counters directly, for callers that poll them (the
// web admin page, every second or so) and should not pay for rendering
// and parsing the whole text exposition.
func (r *Registry) Counters() Counters {
	c := Counters{
		ConnectionsOpen:  int64(value(r.connsOpen)),
		ConnectionsTotal: uint64(value(r.connsTotal)),
		Logins:           make(map[string]uint64, len(r.logins)),
		StanzasIn:        make(map[string]uint64, len(kinds)),
		StanzasOut:       make(map[string]uint64, len(kinds)),
	}
	for res, m := range r.logins {
		c.Logins[res] = uint64(value(m))
	}
	for i, k := range kinds {
		c.StanzasIn[k] = uint64(value(r.stanzasIn[i]))
		c.StanzasOut[k] = uint64(value(r.stanzasOut[i]))
	}
	return c
}

// value reads a counter's or a gauge's current value.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return 0 // only collectors that fail to collect return errors; ours do not
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	}
	return 0
}

// GaugeFunc exports a value read at scrape time, such as a queue's depth.
func (r *Registry) GaugeFunc(name, help string, value func() float64) error {
	return r.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, value))
}

// CounterFunc registers a counter whose value, never decreasing, value
// reads at each scrape.
func (r *Registry) CounterFunc(name, help string, value func() float64) error {
	return r.reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, value))
}

// Handler serves the metrics in the Prometheus text format.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Serve serves /metrics on l until ctx ends.
func (r *Registry) Serve(ctx context.Context, l net.Listener, path string) error {
	mux := http.NewServeMux()
	mux.Handle("GET "+path, r.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics listener: %w", err)
	}
	return nil
}

// factory registers as it builds; the names are constants, so a failure
// is a programming error caught by the package's tests.
type factory struct{ reg *prometheus.Registry }

func newFactory(reg *prometheus.Registry) factory { return factory{reg} }

func (f factory) register(cs ...prometheus.Collector) {
	for _, c := range cs {
		f.reg.MustRegister(c)
	}
}

func (f factory) gauge(o prometheus.GaugeOpts) prometheus.Gauge {
	g := prometheus.NewGauge(o)
	f.register(g)
	return g
}

func (f factory) counter(o prometheus.CounterOpts) prometheus.Counter {
	c := prometheus.NewCounter(o)
	f.register(c)
	return c
}

func (f factory) counterVec(o prometheus.CounterOpts, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(o, labels)
	f.register(c)
	return c
}

func (f factory) histogramVec(o prometheus.HistogramOpts, label string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(o, []string{label})
	f.register(h)
	return h
}
