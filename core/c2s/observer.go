package c2s

import "time"

// Observer is told about connections, logins and stanzas, for metrics.
// Its methods are called on the hot path (StanzaIn and StanzaOut once per
// stanza, from many goroutines), so they must be cheap and must not
// block.
type Observer interface {
	ConnOpened()
	ConnClosed()
	// Login reports the outcome of a login attempt: LoginSuccess,
	// LoginFailure (wrong credentials, a bad request) or LoginRefused
	// (a throttle turned it away).
	Login(result string)
	// StanzaIn reports a stanza from a bound session by its element name,
	// with the time the Handler took for it.
	StanzaIn(local string, took time.Duration)
	// StanzaOut reports a stanza queued to a session by its element name.
	StanzaOut(local string)
}

// Login results for Observer.Login.
const (
	LoginSuccess = "success"
	LoginFailure = "failure"
	LoginRefused = "refused"
)

// nopObserver is the Observer of a Server configured without one.
type nopObserver struct{}

func (nopObserver) ConnOpened()                    {}
func (nopObserver) ConnClosed()                    {}
func (nopObserver) Login(string)                   {}
func (nopObserver) StanzaIn(string, time.Duration) {}
func (nopObserver) StanzaOut(string)               {}
