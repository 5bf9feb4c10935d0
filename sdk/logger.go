package sdk

// Logger is what a backend logs through: the logger its Factory gets. msg
// is a constant description; args are alternating keys and values
// ("user", u, "error", err), kept as structured fields in koi's log.
//
// The plugin's logger writes to the host's log at the level koi runs at,
// under the plugin's name. The interface is small so that a backend, and
// its tests, need no particular logging library: hclog.Logger and
// *slog.Logger both satisfy it (slog.New(slog.DiscardHandler) is a logger
// that drops everything).
type Logger interface {
	Debug(msg string, args ...any)
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
	Error(msg string, args ...any)
}
