// Package clients is the real-client matrix: it starts koi with its default
// settings and drives the XMPP clients that people actually run (Python,
// Perl, Go, C and JavaScript libraries and programs, installed from Debian
// and npm by the test setup), each logging in with its own defaults and
// exchanging a message with a reference peer. It prints a table of client ×
// transport × TLS version × SASL mechanism, read from koi's own log.
package clients

import (
	"context"
	"errors"
)

// Account is a test account on the server under test.
type Account struct {
	User     string // local part, e.g. "alice"
	Domain   string // the virtual host, "localhost"
	Password string
}

// JID returns the bare JID of the account.
func (a Account) JID() string { return a.User + "@" + a.Domain }

// Target says how a client reaches koi for one run.
type Target struct {
	Domain string // the XMPP domain ("localhost"); koi's certificate is for it
	Host   string // "127.0.0.1"
	Port   int    // STARTTLS port, or the direct TLS port when DirectTLS
	// DirectTLS: TLS from the first byte (XEP-0368) instead of STARTTLS.
	DirectTLS bool
	// WebSocketURL is the RFC 7395 endpoint (ws:// or wss://) for clients
	// that only speak WebSocket; "" when the run is over TCP.
	WebSocketURL string
	// CAFile is the PEM file of the certificate the client must trust
	// (koi's self-signed one). Drivers pass it the way their client takes a
	// CA (SSL_CERT_FILE, NODE_EXTRA_CA_CERTS, an option), never by turning
	// verification off unless the client has no way to take a CA.
	CAFile string
	// ClientMaxTLS12 forces the client side to TLS 1.2 (OpenSSL config,
	// a command-line flag...). Only set when Caps().ForceTLS12.
	ClientMaxTLS12 bool
	// WorkDir is a private scratch directory for this run (config files,
	// HOME for clients that write there).
	WorkDir string
}

// Exchange is what one client run must do: log in as Me with the client's
// defaults, send Send as a chat message to Peer (a bare JID) and, when Want
// is not empty, wait until a chat message whose body is Want arrives, then
// log out. The reference peer answers every message it gets with
// "re: "+body to the sender's full JID, so Want is "re: "+Send.
type Exchange struct {
	Me   Account
	Peer string
	Send string
	Want string // "" for clients that cannot receive (Caps().Receive false)
}

// Caps says what a client (or our way of driving it) can do.
type Caps struct {
	DirectTLS  bool // can connect with direct TLS (XEP-0368)
	StartTLS   bool // can connect with STARTTLS over TCP
	WebSocket  bool // can connect over RFC 7395 WebSocket (Target.WebSocketURL)
	ForceTLS12 bool // the client side can be forced to TLS 1.2
	Receive    bool // can wait for and report an incoming message
}

// Driver runs one client program or library.
type Driver interface {
	// Name is the package name shown in the table ("python3-slixmpp").
	Name() string
	Caps() Caps
	// Setup makes sure the client is installed: it installs the Debian or
	// npm package when missing and possible (root, registry reachable) and
	// otherwise returns an error wrapping ErrMissing that names what is
	// missing. It is called once per test binary.
	Setup(ctx context.Context, env *Env) error
	// Run performs x against t and returns nil only when the client logged
	// in, sent, and (if x.Want != "") received. The error should carry the
	// client's own output when it fails.
	Run(ctx context.Context, env *Env, t Target, x Exchange) error
}

// ErrMissing marks a client that is not installed and could not be: the
// test skips it (naming it) outside CI and fails in CI.
var ErrMissing = errors.New("client not available")

// Env is shared by all drivers of one test binary.
type Env struct {
	// CacheDir holds installed npm packages and other per-machine state
	// that survives between runs (under the repository's .cache/).
	CacheDir string
	// Root is true when running as root (apt-get install is possible).
	Root bool
}
