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
	// List is true when a backend whose Access is AccessRead can still
	// enumerate its accounts (a directory, with a paged search) and
	// implements UserLister. A read-write backend always can.
	List bool
}

// CanList reports whether ListUsers is served.
func (a AuthCapabilities) CanList() bool {
	return a.Access.Writable() || (a.List && a.Access.Readable())
}

// Capabilities is what a backend declares it can do. The core never asks a
// backend for something it did not declare.
type Capabilities struct {
	Auth    AuthCapabilities
	Roster  Access
	Offline Access
	VCard   Access
	Private Access
	Archive ArchiveCapabilities
	// Blocklist is the blocking command's list (XEP-0191).
	Blocklist Access
	// Tokens is the store of FAST login tokens (XEP-0484).
	Tokens Access
	// PubSub is the store of publish-subscribe nodes and items (XEP-0060),
	// for PEP and the pubsub service.
	PubSub Access
	// MUC is the store of persistent group chat rooms (XEP-0045).
	MUC Access
	// RosterBatch is true when a read-write roster backend also implements
	// RosterBatchWriter: it applies changes to several rosters at once, all
	// or none. Without it the core writes the two sides of a subscription
	// change one after the other (see RosterBatchWriter).
	RosterBatch bool
}

// ArchiveCapabilities describes a message archive backend.
type ArchiveCapabilities struct {
	// Access is AccessReadWrite for a backend that stores archives (the
	// core needs both directions); AccessNone otherwise.
	Access Access
	// FullText is true when ArchiveQuery.Text is served (a search of
	// message bodies). Without it the core never sends Text.
	FullText bool
	// Retract is true when the backend also implements ArchiveRetractor:
	// a moderated group chat message (XEP-0425), or a message its sender
	// retracted (XEP-0424), is replaced by a tombstone. Without it rooms
	// in this archive offer no moderation and retracted messages stay.
	Retract bool
}

// ArchiveRetractor replaces archived messages with tombstones.
type ArchiveRetractor interface {
	// RetractArchived replaces the stanza of owner's message stanzaID
	// with tombstone and empties its body, so that queries return the
	// tombstone in the message's place, under its id and time, and text
	// searches no longer find its words. ErrNotFound when owner's archive
	// has no such message; retracting one again replaces the tombstone.
	RetractArchived(ctx context.Context, owner, stanzaID, tombstone string) error
}

// Backend is what a plugin's factory returns. It must also implement the
// feature interfaces matching its Capabilities (Auth, AuthAdmin, Roster, ...).
type Backend interface {
	Capabilities() Capabilities
	// Close releases the backend's resources; it is called once at shutdown.
	Close() error
}

// AppendConcurrency is optionally implemented by an Archive whose
// AppendArchive calls may run at the same time, such as one on a database
// server with a pool of connections. On a busy write stream the plugin then
// stores up to AppendWriters groups of batches at once, instead of one
// after the other; each batch is still acknowledged only once it and every
// batch sent before it are stored. Without it, or with 1, groups are stored
// one at a time, which is right for an embedded database with a single
// writer (SQLite).
type AppendConcurrency interface {
	AppendWriters() int
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
//
// Every method of Auth and AuthAdmin returns ErrInvalid when host or user
// is empty: that request is malformed, which is not the same answer as an
// unknown user (sdktest checks it).
type Auth interface {
	// UserExists reports whether the account exists: false, nil for an
	// unknown user.
	UserExists(ctx context.Context, host, user string) (bool, error)
	// CheckPassword verifies a plain-text password. It returns false, nil
	// for a wrong password or an unknown user: an error (even ErrNotFound)
	// means the check itself failed.
	CheckPassword(ctx context.Context, host, user, password string) (bool, error)
	// SCRAMCredentials returns stored credentials for hash (HashSHA1 or
	// HashSHA256), or ErrNotFound for an unknown user. Only called when
	// Capabilities.Auth.SCRAM.
	SCRAMCredentials(ctx context.Context, host, user, hash string) (SCRAMCredentials, error)
}

// UserLister enumerates accounts. Every AuthAdmin is one; a read-only
// backend implements it alone and declares AuthCapabilities.List.
type UserLister interface {
	// ListUsers returns the local parts of every account of host, sorted.
	ListUsers(ctx context.Context, host string) ([]string, error)
}

// AuthAdmin changes accounts. Only called when Capabilities.Auth.Access is
// AccessReadWrite.
type AuthAdmin interface {
	UserLister
	// CreateUser returns ErrExists if the user exists.
	CreateUser(ctx context.Context, host, user, password string) error
	// SetPassword returns ErrNotFound for an unknown user.
	SetPassword(ctx context.Context, host, user, password string) error
	// DeleteUser returns ErrNotFound for an unknown user.
	DeleteUser(ctx context.Context, host, user string) error
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

// RosterChange is what one change does to one owner's roster, about one
// contact: the item for Contact and the pending inbound subscription from
// Contact. Each part is an absolute state (what it becomes, not what to add),
// so a change applied twice leaves what it left once.
type RosterChange struct {
	// Owner is the bare JID whose roster changes.
	Owner string
	// Contact is the bare JID of the item and of the pending subscription.
	Contact string
	// Item, when set, is the item for Contact from now on (Item.JID is
	// Contact). Nil leaves the item as it is, unless DeleteItem.
	Item *RosterItem
	// DeleteItem removes the item for Contact; an absent item is not an
	// error. It cannot be combined with Item.
	DeleteItem bool
	// Pending, when set, records (or replaces) the pending inbound
	// subscription from Contact (Pending.JID is Contact). Nil leaves it,
	// unless DeletePending.
	Pending *PendingSubscription
	// DeletePending forgets the pending inbound subscription from Contact;
	// absent is not an error. It cannot be combined with Pending.
	DeletePending bool
}

// ChangesItem reports whether c sets or removes an item, which gives the
// owner's roster a new version; pending subscriptions alone do not.
func (c RosterChange) ChangesItem() bool { return c.Item != nil || c.DeleteItem }

// RosterBatchWriter is implemented by a roster backend that declares
// Capabilities.RosterBatch. A subscription between two users of the server
// changes both their rosters (RFC 6121 §3): the core hands both sides to
// ApplyRosterChanges so that a crash between two writes can never leave one
// user subscribed and the other not.
type RosterBatchWriter interface {
	// ApplyRosterChanges applies every change or none: when it returns an
	// error, no roster changed. Each (Owner, Contact) appears at most once.
	// versions holds the new roster version of every owner whose items
	// changed (ChangesItem), one new version per owner per call.
	ApplyRosterChanges(ctx context.Context, changes []RosterChange) (versions map[string]string, err error)
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

// Blocklist reads the JIDs a user blocked (XEP-0191). Owners are bare JIDs;
// blocked items are JIDs of any form (domain, bare, full, domain/resource),
// normalised by the core, which also does the matching.
type Blocklist interface {
	// GetBlocklist returns the owner's blocked JIDs, sorted; a user who
	// blocked nobody (or is unknown) has an empty list, not an error.
	GetBlocklist(ctx context.Context, owner string) ([]string, error)
}

// BlocklistWriter changes blocklists. Block and Unblock are idempotent, so
// a call that failed part-way can simply be repeated.
type BlocklistWriter interface {
	// Block adds JIDs to the owner's list; one already there is not an
	// error, nor is a repeat within jids.
	Block(ctx context.Context, owner string, jids []string) error
	// Unblock removes JIDs from the owner's list; an absent one is not an
	// error.
	Unblock(ctx context.Context, owner string, jids []string) error
	// UnblockAll empties the owner's list; an empty list is not an error.
	UnblockAll(ctx context.Context, owner string) error
}

// Token is one FAST login token (XEP-0484) as it is stored: never the token
// itself. The core derives a token's secret from Salt and a key that lives
// outside the backend, and keeps Hash to tell a derived secret is the one it
// handed out; a copy of the backend's data therefore lets nobody log in.
type Token struct {
	// Owner is the bare JID the token logs in.
	Owner string
	// Agent is the client's user-agent id (XEP-0388), the token's slot: a
	// user has a few tokens per client installation.
	Agent string
	// Hash is the SHA-256 of the token (32 bytes); it names the token.
	Hash []byte
	// Salt is the per-token input the core derives the secret from.
	Salt []byte
	// Mechanism is the HT mechanism the token is for (HT-SHA-256-NONE, …).
	Mechanism string
	// Expires is when the token stops working.
	Expires time.Time
}

// Tokens reads FAST tokens.
type Tokens interface {
	// GetTokens returns the owner's tokens for agent, expired ones included
	// (the core deletes those), newest expiry first; none is an empty list,
	// not an error.
	GetTokens(ctx context.Context, owner, agent string) ([]Token, error)
}

// TokensWriter changes the FAST token store.
type TokensWriter interface {
	// PutToken stores t; a token with the same owner, agent and hash is
	// replaced. An empty owner or agent, or a hash that is not 32 bytes, is
	// ErrInvalid.
	PutToken(ctx context.Context, t Token) error
	// DeleteToken removes one token; an absent one is not an error.
	DeleteToken(ctx context.Context, owner, agent string, hash []byte) error
	// DeleteTokens removes every token of owner, of every agent (a password
	// change, an operator's revocation, a deleted account); none is not an
	// error.
	DeleteTokens(ctx context.Context, owner string) error
}

// ArchivedMessage is one message in a user's message archive (XEP-0313).
type ArchivedMessage struct {
	// Owner is the bare JID whose archive holds the message.
	Owner string
	// StanzaID is the archive's id of the message (XEP-0359). The core
	// assigns it: unique within the owner's archive and ordered like time,
	// so a later message has a greater id (bytewise, as Go compares
	// strings). Backends order and page by it; a time range reaches them as
	// a range of ids.
	StanzaID string
	// Peer is the other party's bare JID; PeerResource its resource, or ""
	// if the message was addressed to (or sent from) a bare JID.
	Peer         string
	PeerResource string
	// Stamp is when the server archived the message, in UTC, to the
	// millisecond (the core's stamps have no more); backends keep at least
	// that precision.
	Stamp time.Time
	// Outgoing is true for a message the owner sent, false for one the
	// owner received.
	Outgoing bool
	// Stanza is the serialised message stanza.
	Stanza string
	// Body is the message's plain text body, for full-text search; it may
	// be empty (an encrypted message, say).
	Body string
}

// Archiving defaults of ArchivePrefs (XEP-0313 §6.1).
const (
	ArchiveAlways = "always"
	ArchiveNever  = "never"
	ArchiveRoster = "roster"
)

// ArchivePrefs are a user's archiving preferences.
type ArchivePrefs struct {
	// Default is ArchiveAlways, ArchiveNever, ArchiveRoster, or "" when the
	// user never set preferences (the server's default applies).
	Default string
	// Always and Never list bare JIDs whose messages are always (never)
	// archived, whatever Default says.
	Always []string
	Never  []string
}

// MaxArchivePage is the largest ArchiveQuery.Max a backend must serve.
const MaxArchivePage = 1000

// ArchiveQuery selects messages of one archive. The filters (With ... Text)
// define the result set; After, Before, Last, Skip and Max select one page
// of it (Result Set Management, XEP-0059).
type ArchiveQuery struct {
	// Owner is the archive's bare JID; required.
	Owner string
	// With keeps messages whose Peer is With ("" keeps all); with it,
	// a non-empty WithResource also requires PeerResource == WithResource.
	With         string
	WithResource string
	// AfterID and BeforeID keep messages whose StanzaID is strictly
	// greater (smaller) than the value; "" leaves that side open.
	AfterID, BeforeID string
	// IDs, if not empty, keeps only messages with one of these StanzaIDs.
	IDs []string
	// Text keeps messages whose Body matches: a word search where the
	// backend has a text index, a case-insensitive substring search
	// otherwise. Only sent to backends declaring ArchiveCapabilities.FullText.
	Text string

	// After and Before bound the page: only messages of the result set with
	// a StanzaID strictly greater than After (smaller than Before).
	After, Before string
	// Last takes the page from the end of the (bounded) result set: the Max
	// messages with the greatest ids. Otherwise the page starts at its
	// beginning, after skipping Skip messages.
	Last bool
	Skip int
	// Max is the page size, 0 to MaxArchivePage; 0 returns no messages
	// (useful with Count).
	Max int
	// Count asks for ArchivePage.Count and Index, which cost the backend
	// more than the page itself.
	Count bool
}

// ArchivePage is one page of an archive query.
type ArchivePage struct {
	// Messages are in ascending StanzaID order, whatever the direction of
	// the query.
	Messages []ArchivedMessage
	// Complete is true when the page reaches the end of the result set in
	// its direction: no message after the last one (for a Last query, none
	// before the first one) is left within the page bounds.
	Complete bool
	// Count is the size of the whole result set, ignoring the page bounds
	// (After, Before, Skip, Max, Last). Only set when the query asked.
	Count int
	// Index is how many messages of the result set come before
	// Messages[0]. Only set when the query asked for Count.
	Index int
}

// Archive stores message archives (XEP-0313). Owners and peers are bare
// JIDs, normalised.
type Archive interface {
	// AppendArchive stores a batch of messages, of any owners. It is
	// idempotent: a message whose (Owner, StanzaID) is already stored is
	// skipped, neither an error nor overwritten, so the core can resend a
	// batch whose outcome it did not learn. On error part of the batch may
	// have been stored.
	AppendArchive(ctx context.Context, msgs []ArchivedMessage) error
	// QueryArchive returns one page of the owner's archive. An unknown
	// owner has an empty archive.
	QueryArchive(ctx context.Context, q ArchiveQuery) (ArchivePage, error)
	// DeleteArchive removes the owner's messages and preferences; an
	// absent archive is not an error.
	DeleteArchive(ctx context.Context, owner string) error
	// GetArchivePrefs returns the owner's preferences; a user who never set
	// any gets the zero value (Default ""), not an error.
	GetArchivePrefs(ctx context.Context, owner string) (ArchivePrefs, error)
	// SetArchivePrefs replaces the owner's preferences.
	SetArchivePrefs(ctx context.Context, owner string, prefs ArchivePrefs) error
}
