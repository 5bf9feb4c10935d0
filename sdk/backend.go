// Package sdk is the contract between the koi server and its backend plugins.
//
// A backend is a separate program. Its main function builds the backend from
// the configuration block the operator wrote in config.hcl and hands it to
// Serve; koi starts the program, talks to it over gRPC (hashicorp/go-plugin)
// and calls the interfaces below. Each feature is one small interface; a
// backend implements the ones it serves and declares, in Capabilities, which
// of them it can also write.
package sdk

import (
	"context"
	"errors"
	"time"
)

// Access says how much of a feature a backend serves.
type Access int

const (
	// AccessNone means the backend does not serve the feature.
	AccessNone Access = iota
	// AccessRead means the backend can answer reads but refuses changes.
	AccessRead
	// AccessReadWrite means the backend serves reads and changes.
	AccessReadWrite
)

func (a Access) String() string {
	switch a {
	case AccessRead:
		return "read-only"
	case AccessReadWrite:
		return "read-write"
	default:
		return "none"
	}
}

// Readable reports whether the feature is served at all.
func (a Access) Readable() bool { return a >= AccessRead }

// Writable reports whether the feature accepts changes.
func (a Access) Writable() bool { return a == AccessReadWrite }

// AuthCapabilities describes an authentication backend.
type AuthCapabilities struct {
	// Access is AccessRead for a backend that can check passwords but not
	// create users or change passwords (a directory), AccessReadWrite for
	// one that owns the accounts.
	Access Access
	// SCRAM is true when the backend keeps SCRAM credentials (salt,
	// iteration count, StoredKey, ServerKey) and returns them from
	// SCRAMCredentials. Without it koi offers only SASL PLAIN, over TLS.
	SCRAM bool
}

// Capabilities is what a backend declares it can do. The core never asks a
// backend for something it did not declare.
type Capabilities struct {
	Auth    AuthCapabilities
	Roster  Access
	Offline Access
	VCard   Access
	Private Access
}

// Backend is what a plugin's factory returns. It must also implement the
// feature interfaces matching its Capabilities (Auth, AuthAdmin, Roster, ...).
type Backend interface {
	Capabilities() Capabilities
	// Close releases the backend's resources; it is called once at shutdown.
	Close() error
}

// Pinger is optionally implemented by a backend that can check its own
// dependencies (a database connection, a directory). The host calls it as a
// health check; an error marks the backend unhealthy.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Errors a backend returns. They cross the gRPC boundary intact (as status
// codes) so the core can map them to the right XMPP error.
var (
	// ErrNotFound: the user, item or document does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: the user or item already exists.
	ErrExists = errors.New("already exists")
	// ErrReadOnly: the backend does not accept this change.
	ErrReadOnly = errors.New("backend is read-only")
	// ErrUnavailable: a temporary failure (database down, timeout). The
	// request may succeed later.
	ErrUnavailable = errors.New("backend unavailable")
	// ErrInvalid: the request is malformed (an empty user name, a bad
	// value). It will not succeed if repeated.
	ErrInvalid = errors.New("invalid request")
)

// SCRAMCredentials are what a SCRAM server needs to verify a client without
// ever knowing the password (RFC 5802).
type SCRAMCredentials struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// Hash names used with SCRAMCredentials.
const (
	HashSHA1   = "SHA-1"
	HashSHA256 = "SHA-256"
)

// Auth checks accounts. Users are identified by their local part (already
// normalised by the core with the UsernameCaseMapped PRECIS profile) and the
// virtual host they belong to.
type Auth interface {
	// UserExists reports whether the account exists.
	UserExists(ctx context.Context, host, user string) (bool, error)
	// CheckPassword verifies a plain-text password. It returns false, nil
	// for a wrong password or an unknown user.
	CheckPassword(ctx context.Context, host, user, password string) (bool, error)
	// SCRAMCredentials returns stored credentials for hash (HashSHA1 or
	// HashSHA256), or ErrNotFound. Only called when Capabilities.Auth.SCRAM.
	SCRAMCredentials(ctx context.Context, host, user, hash string) (SCRAMCredentials, error)
}

// AuthAdmin changes accounts. Only called when Capabilities.Auth.Access is
// AccessReadWrite.
type AuthAdmin interface {
	// CreateUser returns ErrExists if the user exists.
	CreateUser(ctx context.Context, host, user, password string) error
	// SetPassword returns ErrNotFound for an unknown user.
	SetPassword(ctx context.Context, host, user, password string) error
	// DeleteUser returns ErrNotFound for an unknown user.
	DeleteUser(ctx context.Context, host, user string) error
	// ListUsers returns the local parts of every account of host, sorted.
	ListUsers(ctx context.Context, host string) ([]string, error)
}

// Subscription states of a roster item (RFC 6121 §2.1.2.5).
const (
	SubNone = "none"
	SubTo   = "to"
	SubFrom = "from"
	SubBoth = "both"
)

// RosterItem is one contact in a user's roster.
type RosterItem struct {
	// JID is the contact's bare JID, normalised.
	JID          string
	Name         string
	Subscription string // SubNone, SubTo, SubFrom or SubBoth
	// Ask is true while the user's subscription request to the contact is
	// pending ("pending out").
	Ask bool
	// Approved is a pre-approval (RFC 6121 §3.4) of the contact's future
	// subscription request.
	Approved bool
	Groups   []string
}

// PendingSubscription is a subscription request from a contact that the user
// has not answered yet ("pending in"). Stanza is the original presence
// stanza, re-delivered at each login until answered.
type PendingSubscription struct {
	JID    string
	Stanza string
}

// RosterState is a user's whole roster.
type RosterState struct {
	// Version changes whenever the roster changes (XEP-0237); opaque to
	// clients, a decimal counter in the shipped backends.
	Version string
	Items   []RosterItem
	Pending []PendingSubscription
}

// Roster reads rosters. Owners are bare JIDs ("user@host"), normalised.
type Roster interface {
	// GetRoster returns the owner's roster; an unknown owner has an empty
	// roster and version "0", not an error.
	GetRoster(ctx context.Context, owner string) (RosterState, error)
}

// RosterWriter changes rosters. Each call returns the roster's new version.
type RosterWriter interface {
	// SetItem creates or replaces the item for item.JID.
	SetItem(ctx context.Context, owner string, item RosterItem) (version string, err error)
	// DeleteItem removes the item for contact; ErrNotFound if absent.
	DeleteItem(ctx context.Context, owner, contact string) (version string, err error)
	// SetPending records (or replaces) a pending inbound subscription.
	SetPending(ctx context.Context, owner string, p PendingSubscription) error
	// DeletePending forgets a pending inbound subscription; absent is not an error.
	DeletePending(ctx context.Context, owner, contact string) error
	// DeleteRoster removes everything the owner has; absent is not an error.
	DeleteRoster(ctx context.Context, owner string) error
}

// OfflineMessage is a message stored for a user who was not online.
type OfflineMessage struct {
	// Stanza is the serialised message stanza as it should be delivered.
	Stanza string
	// Stamp is when the server received it (for XEP-0203 delay).
	Stamp time.Time
}

// Offline stores messages for users who are away (XEP-0160).
type Offline interface {
	// Store appends a message; ErrExists ... never; limit is enforced by the
	// core with Count.
	Store(ctx context.Context, owner string, msg OfflineMessage) error
	// Count returns how many messages wait for owner.
	Count(ctx context.Context, owner string) (int, error)
	// Pop returns every stored message in arrival order and removes them,
	// atomically: a message is returned by exactly one Pop.
	Pop(ctx context.Context, owner string) ([]OfflineMessage, error)
	// DeleteAll removes every stored message of owner.
	DeleteAll(ctx context.Context, owner string) error
}

// VCard stores vcard-temp documents (XEP-0054).
type VCard interface {
	// GetVCard returns the serialised <vCard xmlns='vcard-temp'> element, or ErrNotFound.
	GetVCard(ctx context.Context, owner string) (string, error)
}

// VCardWriter changes vcard-temp documents.
type VCardWriter interface {
	SetVCard(ctx context.Context, owner, vcard string) error
	DeleteVCard(ctx context.Context, owner string) error
}

// Private stores private XML (XEP-0049), one document per owner and
// element name+namespace.
type Private interface {
	// GetPrivate returns the serialised element stored under (name, ns), or ErrNotFound.
	GetPrivate(ctx context.Context, owner, name, namespace string) (string, error)
}

// PrivateWriter changes private XML storage.
type PrivateWriter interface {
	SetPrivate(ctx context.Context, owner, name, namespace, xml string) error
	DeletePrivate(ctx context.Context, owner string) error
}
