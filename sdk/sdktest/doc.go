// Package sdktest is the conformance kit for koi backends: called from a
// plugin's own tests with the plugin's sdk.Factory, it checks every promise
// the interfaces of package sdk make, for every feature the backend
// declares in Capabilities, both in process and through a real plugin
// process started the way koi starts it.
//
// A plugin's TestConformance calls Run with its sdk.Factory, the plugin
// binary built by BuildPlugin, and Options (see the example of Run).
//
// What is checked, per declared feature (subtest names in brackets):
//
//   - every declared feature implements its interfaces [capabilities];
//     Ping succeeds if the backend is an sdk.Pinger [ping].
//   - auth: unknown users are (false, nil) and sdk.ErrNotFound for SCRAM;
//     empty user or host names are sdk.ErrInvalid; read-write: CreateUser
//     and sdk.ErrExists, SetPassword, DeleteUser and sdk.ErrNotFound,
//     accounts per host, ListUsers sorted, SCRAM credentials for SHA-1 and
//     SHA-256 that verify the password (sdk.CheckSCRAMPassword), unicode
//     names stored exactly (zoë is not zoe), exactly one winner among
//     concurrent CreateUser calls of one name; read-only: the account of
//     Options.ExistingUser, listed by ListUsers if the backend declares
//     AuthCapabilities.List.
//   - roster: an unknown owner has version "0"; every item field round
//     trips, group order included; every write returns a new version (a
//     greater one, for decimal versions) that GetRoster then reports;
//     DeleteItem and sdk.ErrNotFound; pending requests; DeleteRoster;
//     rosters per owner; unicode; a 10,000-item roster; concurrent
//     writers get distinct versions and lose no item.
//   - offline: messages come back in arrival order with their stamps to
//     the microsecond; Pop empties the queue; concurrent Pops deliver
//     every message exactly once; DeleteAll.
//   - vcard and private: sdk.ErrNotFound, round trips (unicode, a 100 KB
//     vCard), overwrite, private documents keyed by name and namespace,
//     the Delete calls.
//   - archive: every message field round trips (stamps to the
//     millisecond); appends are idempotent on (owner, stanza id), also
//     when the same batch is appended concurrently, and never overwrite;
//     pages forward (After), backward (Last, Before) and by Skip, with
//     Complete, Count and Index; the With, WithResource, AfterID,
//     BeforeID and IDs filters alone and together; full-text search when
//     declared; RetractArchived (the tombstone in the message's place, its
//     words no longer found) when declared; preferences; DeleteArchive;
//     sdk.ErrInvalid for bad input.
//   - muc: GetMUCRoom of an absent room is sdk.ErrNotFound, lists of an
//     unused service or room are empty; rooms round trip with their config
//     byte for byte (multi-valued fields, a field without values, an empty
//     value, unicode, markup, line breaks) and Created to the millisecond;
//     a second put replaces config and subject and keeps Created; rooms
//     listed per service in byte order, none of another service (however
//     alike the names); affiliations set, replaced and removed ("none"),
//     sorted by JID, kept when the room is put again, sdk.ErrNotFound on
//     a room that is not stored, gone with DeleteMUCRoom (a room made
//     again starts without them); keys exact (Cafe, cafe, café and
//     cafe+U+0301 are four rooms); sdk.ErrInvalid for malformed room JIDs,
//     JIDs and affiliations; listings over 4 MiB; concurrent puts and
//     affiliation changes.
//   - pubsub: absent nodes are sdk.ErrNotFound, empty services list
//     nothing; nodes per service sorted bytewise, config forms round trip
//     (field order of values, unicode, empty fields), sdk.ErrExists,
//     Configure keeps Created; deleting a node takes its items,
//     affiliations and subscriptions with it; items newest first by
//     Published then publication, a republished id becomes the newest;
//     trimming to maxItems, also under concurrent publishers; retract,
//     purge; pages After, Before, both, Max 0, by IDs, with Count and
//     Complete, sdk.ErrNotFound for an unknown cursor; payloads byte for
//     byte (200 KiB avatars, a page over 4 MiB); affiliations and
//     subscriptions set, replaced, removed with "none", looked up per
//     node or per JID (subscriptions by bare JID); exactly one winner
//     among concurrent creates; writes racing with a deletion;
//     sdk.ErrInvalid for bad input.
//   - over the wire only [refusals]: what the plugin does not declare is
//     refused, writes to read-only features with sdk.ErrReadOnly (or
//     errors.ErrUnsupported), reads of undeclared features with
//     errors.ErrUnsupported, and refused writes leave no trace.
//
// The same checks run in process and over the wire, so errors must keep
// their meaning across it: errors.Is(err, sdk.ErrNotFound) holds on both
// sides only if the backend returns (or wraps) the sdk sentinels.
//
// A backend that panics fails the subtest it panicked in, with the stack;
// the other checks, and the plugin run, still run. (In a plugin the SDK
// recovers panics too and returns them as errors: a panic is never an
// answer koi understands.)
//
// # Fresh state
//
// Every subtest builds its own backend (and, over the wire, starts its own
// plugin process). With Options.NewConfig each gets its own store; with
// only Options.Config they share one, and the kit keeps them apart with
// user names and owners unique to each subtest (and to each run, so a
// store that outlives the test does not get in the way either).
//
// # Read-only backends
//
// The kit cannot fill a read-only store: it checks what an empty one must
// answer, plus the account named by Options.ExistingUser and
// Options.ExistingPassword, which the test must have created beforehand.
package sdktest
