package pluginhost

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/sdk"
)

// errLogEvery is the least time between two log lines about failing calls
// of one plugin method. A store that is down fails every call; one line
// every few seconds, with a count, says so without flooding the log.
const errLogEvery = 5 * time.Second

// errLog logs the errors a plugin's calls return. The callers (c2s, the
// modules) turn them into XMPP errors such as temporary-auth-failure and
// do not log them, so without this the operator would never see why.
// Each error is logged here, once, for every call site.
type errLog struct {
	log   hclog.Logger
	now   func() time.Time // time.Now; tests replace it
	every time.Duration

	mu      sync.Mutex
	methods map[string]*errLogState
}

// errLogState is the rate limit of one method.
type errLogState struct {
	last       time.Time // when the last line was written
	suppressed int       // errors not logged since then
}

func newErrLog(log hclog.Logger) *errLog {
	return &errLog{log: log, now: time.Now, every: errLogEvery, methods: map[string]*errLogState{}}
}

// normalAnswer reports whether err is one of the answers the sdk contract
// defines for ordinary requests (no such user, already exists, bad input,
// read-only): koi maps those to XMPP errors on purpose, and logging them
// would log every mistyped login.
func normalAnswer(err error) bool {
	return errors.Is(err, sdk.ErrNotFound) || errors.Is(err, sdk.ErrExists) ||
		errors.Is(err, sdk.ErrInvalid) || errors.Is(err, sdk.ErrReadOnly)
}

// report logs err, returned by method for host, unless it is a normal
// answer, the caller gave up (ctx is done: the client went away, which is
// no fault of the plugin), or the method has logged within l.every.
func (l *errLog) report(ctx context.Context, method, host string, err error) {
	if err == nil || normalAnswer(err) || ctx.Err() != nil {
		return
	}
	now := l.now()
	l.mu.Lock()
	st := l.methods[method]
	if st == nil {
		st = &errLogState{}
		l.methods[method] = st
	}
	if !st.last.IsZero() && now.Sub(st.last) < l.every {
		st.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := st.suppressed
	st.last, st.suppressed = now, 0
	l.mu.Unlock()

	args := []any{"method", method, "host", host, "error", err}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed, "since", l.every.String())
	}
	l.log.Warn("plugin call failed", args...)
}

// hostOf returns the domain of a bare JID ("user@host" or "host"), for
// the methods that take an owner rather than a host.
func hostOf(jid string) string {
	if i := strings.LastIndexByte(jid, '@'); i >= 0 {
		return jid[i+1:]
	}
	return jid
}
