package throttle

import (
	"sync/atomic"
	"time"
)

// GuardConfig sets the limits of a Guard. A limit of 0 turns that limit
// off.
type GuardConfig struct {
	// PerAddress is how many wrong credentials one source address may send
	// within Window before all its logins are refused. It must be high
	// enough for a NAT with a few hundred users behind it.
	PerAddress int
	// PerAccount is how many wrong credentials for one account from one
	// source address are allowed within Window before that address may not
	// log in to that account. Other addresses are not affected.
	PerAccount int
	// Window is the sliding window of both limits.
	Window time.Duration
	// SlowdownMax caps the delay added to every login of an account that
	// failed PerAccount times or more within Window from any addresses: a
	// guess spread over many addresses is slowed down, but the owner still
	// gets in. 0 turns the slowdown off.
	SlowdownMax time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// slowdownStep is the delay added per failure over the threshold.
const slowdownStep = 500 * time.Millisecond

// Guard is the login throttle. It counts only wrong credentials (a bad
// password or SCRAM proof, an unknown user): aborted exchanges, unknown
// mechanisms, channel binding mismatches and malformed messages cost
// nothing, because real clients produce them while probing what the server
// supports.
//
// It refuses by source address, and by account only for the addresses that
// failed: a stranger guessing a password locks out himself, never the
// account's owner. A guess spread over many addresses is slowed down
// instead (see GuardConfig.SlowdownMax). Safe for concurrent use.
type Guard struct {
	cfg         atomic.Pointer[GuardConfig] // swapped by Reconfigure
	address     *Limiter                    // key: source address
	accountAddr *Limiter                    // key: account NUL address
	account     *Limiter                    // key: account; counts past PerAccount for the slowdown
}

// NewGuard returns a Guard with the limits of cfg.
func NewGuard(cfg GuardConfig) *Guard {
	g := &Guard{
		address:     New(cfg.PerAddress, cfg.Window, cfg.Now),
		accountAddr: New(cfg.PerAccount, cfg.Window, cfg.Now),
		account:     New(cfg.PerAccount+slowdownSteps(cfg), cfg.Window, cfg.Now),
	}
	g.cfg.Store(&cfg)
	return g
}

// slowdownSteps is how many failures past PerAccount the account counter
// keeps for the slowdown.
func slowdownSteps(cfg GuardConfig) int {
	if cfg.SlowdownMax > 0 && cfg.PerAccount > 0 {
		return int(cfg.SlowdownMax/slowdownStep) + 1
	}
	return 0
}

// Reconfigure changes the limits (cfg.Now is ignored: the clock stays).
// The failures already counted stay and count against the new limits.
func (g *Guard) Reconfigure(cfg GuardConfig) {
	if g == nil {
		return
	}
	cfg.Now = g.cfg.Load().Now
	g.address.SetLimit(cfg.PerAddress, cfg.Window)
	g.accountAddr.SetLimit(cfg.PerAccount, cfg.Window)
	g.account.SetLimit(cfg.PerAccount+slowdownSteps(cfg), cfg.Window)
	g.cfg.Store(&cfg)
}

// CheckAddress reports whether addr may try to log in, and if not, how
// long until it may.
func (g *Guard) CheckAddress(addr string) (retryAfter time.Duration, ok bool) {
	if g == nil {
		return 0, true
	}
	d := g.address.RetryAfter(addr)
	return d, d == 0
}

// CheckAccount reports whether addr may log in to account (a bare JID), and
// if not, how long until it may.
func (g *Guard) CheckAccount(addr, account string) (retryAfter time.Duration, ok bool) {
	if g == nil {
		return 0, true
	}
	d := g.accountAddr.RetryAfter(account + "\x00" + addr)
	return d, d == 0
}

// Slowdown returns how long to wait before answering a login to account:
// zero unless the account is failing from many places at once.
func (g *Guard) Slowdown(account string) time.Duration {
	if g == nil {
		return 0
	}
	cfg := g.cfg.Load()
	if cfg.SlowdownMax <= 0 || cfg.PerAccount <= 0 {
		return 0
	}
	over := g.account.Count(account) - cfg.PerAccount + 1
	if over <= 0 {
		return 0
	}
	return min(time.Duration(over)*slowdownStep, cfg.SlowdownMax)
}

// Failed records wrong credentials from addr for account ("" when the
// client never named one).
func (g *Guard) Failed(addr, account string) {
	if g == nil {
		return
	}
	g.address.Fail(addr)
	if account != "" {
		g.accountAddr.Fail(account + "\x00" + addr)
		g.account.Fail(account)
	}
}

// Succeeded forgets addr's failures for account: its owner typed the
// password right. The address's own count stays, or one valid account
// would let an address guess without limit.
func (g *Guard) Succeeded(addr, account string) {
	if g == nil {
		return
	}
	g.accountAddr.Reset(account + "\x00" + addr)
}
