package extauth

import (
	"slices"

	"github.com/koi-im/koi/sdk"
)

// withArgs returns a logger that adds args (key-value pairs) to every line
// it writes to log, before the line's own, as hclog's With does: the
// program instance and pid on every line about one program. sdk.Logger
// leaves With out to stay small.
func withArgs(log sdk.Logger, args ...any) sdk.Logger {
	return argsLogger{log: log, args: args}
}

type argsLogger struct {
	log  sdk.Logger
	args []any
}

// join clips l.args so that concurrent lines never append into the same
// backing array.
func (l argsLogger) join(args []any) []any { return append(slices.Clip(l.args), args...) }

func (l argsLogger) Debug(msg string, args ...any) { l.log.Debug(msg, l.join(args)...) }
func (l argsLogger) Info(msg string, args ...any)  { l.log.Info(msg, l.join(args)...) }
func (l argsLogger) Warn(msg string, args ...any)  { l.log.Warn(msg, l.join(args)...) }
func (l argsLogger) Error(msg string, args ...any) { l.log.Error(msg, l.join(args)...) }
