package pluginhost

import "time"

// Observer is told about plugin calls and restarts, for metrics. It is
// called from many goroutines and must not block.
type Observer interface {
	// PluginCall reports one call of method on plugin; err is what the
	// caller got (a call refused while the plugin is down included).
	PluginCall(plugin, method string, took time.Duration, err error)
	// PluginRestarted reports a plugin process started again after it
	// died.
	PluginRestarted(plugin string)
}

// SetObserver makes every plugin report to o, those a Plan adds too.
// Call it before Start.
func (h *Host) SetObserver(o Observer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.obs = o
	for _, b := range h.backends {
		b.obs = o
	}
}

// observeCall reports a call to the observer, if any.
func (b *Backend) observeCall(method string, start time.Time, err error) {
	if b.obs != nil {
		b.obs.PluginCall(b.spec.Name, method, time.Since(start), err)
	}
}
