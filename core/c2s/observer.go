package c2s

import "time"

// Observer is told about connections, logins and stanzas, for metrics.
// Its methods are called on the hot path (StanzaIn and StanzaOut once per
// stanza, from many goroutines), so they must be cheap and must not
// block.
type Observer interface {
	ConnOpened()
	ConnClosed()
	// Login reports a finished SASL or SASL2 exchange.
	Login(ok bool)
	// StanzaIn reports a stanza from a bound session by its element name,
	// with the time the Handler took for it.
	StanzaIn(local string, took time.Duration)
	// StanzaOut reports a stanza queued to a session by its element name.
	StanzaOut(local string)
}

// nopObserver is the Observer of a Server configured without one.
type nopObserver struct{}

func (nopObserver) ConnOpened()                    {}
func (nopObserver) ConnClosed()                    {}
func (nopObserver) Login(bool)                     {}
func (nopObserver) StanzaIn(string, time.Duration) {}
func (nopObserver) StanzaOut(string)               {}
