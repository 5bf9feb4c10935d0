package pluginhost

import (
	"context"
	"errors"
	"fmt"

	"github.com/koi-im/koi/sdk"
)

// The feature methods below forward to the current plugin process, each
// bounded by the plugin's CallTimeout. While the plugin is down they fail
// at once with an error wrapping sdk.ErrUnavailable.

var (
	_ sdk.Auth              = (*Backend)(nil)
	_ sdk.AuthAdmin         = (*Backend)(nil)
	_ sdk.Roster            = (*Backend)(nil)
	_ sdk.RosterWriter      = (*Backend)(nil)
	_ sdk.RosterBatchWriter = (*Backend)(nil)
	_ sdk.Offline           = (*Backend)(nil)
	_ sdk.VCard             = (*Backend)(nil)
	_ sdk.VCardWriter       = (*Backend)(nil)
	_ sdk.Private           = (*Backend)(nil)
	_ sdk.PrivateWriter     = (*Backend)(nil)
	_ sdk.Archive           = (*Backend)(nil)
	_ sdk.Blocklist         = (*Backend)(nil)
	_ sdk.BlocklistWriter   = (*Backend)(nil)
	_ sdk.Tokens            = (*Backend)(nil)
	_ sdk.TokensWriter      = (*Backend)(nil)
	_ sdk.MUC               = (*Backend)(nil)
	_ sdk.MUCWriter         = (*Backend)(nil)
	_ sdk.Pinger            = (*Backend)(nil)
)

// Ping asks the plugin to check its backend's dependencies.
func (b *Backend) Ping(ctx context.Context) error {
	return callErr(ctx, b, "Ping", "", func(ctx context.Context, c *sdk.Client) error { return c.Ping(ctx) })
}

// UserExists implements sdk.Auth.
func (b *Backend) UserExists(ctx context.Context, host, user string) (bool, error) {
	return call(ctx, b, "UserExists", host, func(ctx context.Context, c *sdk.Client) (bool, error) { return c.UserExists(ctx, host, user) })
}

// CheckPassword implements sdk.Auth.
func (b *Backend) CheckPassword(ctx context.Context, host, user, password string) (bool, error) {
	return call(ctx, b, "CheckPassword", host, func(ctx context.Context, c *sdk.Client) (bool, error) {
		return c.CheckPassword(ctx, host, user, password)
	})
}

// SCRAMCredentials implements sdk.Auth.
func (b *Backend) SCRAMCredentials(ctx context.Context, host, user, hash string) (sdk.SCRAMCredentials, error) {
	return call(ctx, b, "SCRAMCredentials", host, func(ctx context.Context, c *sdk.Client) (sdk.SCRAMCredentials, error) {
		return c.SCRAMCredentials(ctx, host, user, hash)
	})
}

// CreateUser implements sdk.AuthAdmin.
func (b *Backend) CreateUser(ctx context.Context, host, user, password string) error {
	return callErr(ctx, b, "CreateUser", host, func(ctx context.Context, c *sdk.Client) error { return c.CreateUser(ctx, host, user, password) })
}

// SetPassword implements sdk.AuthAdmin.
func (b *Backend) SetPassword(ctx context.Context, host, user, password string) error {
	return callErr(ctx, b, "SetPassword", host, func(ctx context.Context, c *sdk.Client) error { return c.SetPassword(ctx, host, user, password) })
}

// DeleteUser implements sdk.AuthAdmin.
func (b *Backend) DeleteUser(ctx context.Context, host, user string) error {
	return callErr(ctx, b, "DeleteUser", host, func(ctx context.Context, c *sdk.Client) error { return c.DeleteUser(ctx, host, user) })
}

// ListUsers implements sdk.AuthAdmin.
func (b *Backend) ListUsers(ctx context.Context, host string) ([]string, error) {
	return call(ctx, b, "ListUsers", host, func(ctx context.Context, c *sdk.Client) ([]string, error) { return c.ListUsers(ctx, host) })
}

// GetRoster implements sdk.Roster.
func (b *Backend) GetRoster(ctx context.Context, owner string) (sdk.RosterState, error) {
	return call(ctx, b, "GetRoster", hostOf(owner), func(ctx context.Context, c *sdk.Client) (sdk.RosterState, error) { return c.GetRoster(ctx, owner) })
}

// SetItem implements sdk.RosterWriter.
func (b *Backend) SetItem(ctx context.Context, owner string, item sdk.RosterItem) (string, error) {
	return call(ctx, b, "SetItem", hostOf(owner), func(ctx context.Context, c *sdk.Client) (string, error) { return c.SetItem(ctx, owner, item) })
}

// DeleteItem implements sdk.RosterWriter.
func (b *Backend) DeleteItem(ctx context.Context, owner, contact string) (string, error) {
	return call(ctx, b, "DeleteItem", hostOf(owner), func(ctx context.Context, c *sdk.Client) (string, error) { return c.DeleteItem(ctx, owner, contact) })
}

// SetPending implements sdk.RosterWriter.
func (b *Backend) SetPending(ctx context.Context, owner string, p sdk.PendingSubscription) error {
	return callErr(ctx, b, "SetPending", hostOf(owner), func(ctx context.Context, c *sdk.Client) error { return c.SetPending(ctx, owner, p) })
}

// DeletePending implements sdk.RosterWriter.
func (b *Backend) DeletePending(ctx context.Context, owner, contact string) error {
	return callErr(ctx, b, "DeletePending", hostOf(owner), func(ctx context.Context, c *sdk.Client) error { return c.DeletePending(ctx, owner, contact) })
}

// ApplyRosterChanges implements sdk.RosterBatchWriter. The core calls it
// only when the plugin declared Capabilities().RosterBatch.
func (b *Backend) ApplyRosterChanges(ctx context.Context, changes []sdk.RosterChange) (map[string]string, error) {
	host := ""
	if len(changes) > 0 {
		host = hostOf(changes[0].Owner)
	}
	return call(ctx, b, "ApplyRosterChanges", host, func(ctx context.Context, c *sdk.Client) (map[string]string, error) {
		return c.ApplyRosterChanges(ctx, changes)
	})
}

// DeleteRoster implements sdk.RosterWriter.
func (b *Backend) DeleteRoster(ctx context.Context, owner string) error {
	return callErr(ctx, b, "DeleteRoster", hostOf(owner), func(ctx context.Context, c *sdk.Client) error { return c.DeleteRoster(ctx, owner) })
}

// Store implements sdk.Offline.
func (b *Backend) Store(ctx context.Context, owner string, msg sdk.OfflineMessage) error {
	return callErr(ctx, b, "Store", hostOf(owner), func(ctx context.Context, c *sdk.Client) error { return c.Store(ctx, owner, msg) })
}

// Count implements sdk.Offline.
func (b *Backend) Count(ctx context.Context, owner string) (int, error) {
	return call(ctx, b, "Count", hostOf(owner), func(ctx context.Context, c *sdk.Client) (int, error) { return c.Count(ctx, owner) })
}

// Pop implements sdk.Offline.
func (b *Backend) Pop(ctx context.Context, owner string) ([]sdk.OfflineMessage, error) {
	return call(ctx, b, "Pop", hostOf(owner), func(ctx context.Context, c *sdk.Client) ([]sdk.OfflineMessage, error) { return c.Pop(ctx, owner) })
}

// DeleteAll implements sdk.Offline.
func (b *Backend) DeleteAll(ctx context.Context, owner string) error {
	return callErr(ctx, b, "DeleteAll", hostOf(owner), func(ctx context.Context, c *sdk.Client) error { return c.DeleteAll(ctx, owner) })
}

// GetVCard implements sdk.VCard.
func (b *Backend) GetVCard(ctx context.Context, owner string) (string, error) {
	return call(ctx, b, "GetVCard", hostOf(owner), func(ctx context.Context, c *sdk.Client) (string, error) { return c.GetVCard(ctx, owner) })
}

// SetVCard implements sdk.VCardWriter.
func (b *Backend) SetVCard(ctx context.Context, owner, vcard string) error {
	return callErr(ctx, b, "SetVCard", hostOf(owner), func(ctx context.Context, c *sdk.Client) error { return c.SetVCard(ctx, owner, vcard) })
}

// DeleteVCard implements sdk.VCardWriter.
func (b *Backend) DeleteVCard(ctx context.Context, owner string) error {
	return callErr(ctx, b, "DeleteVCard", hostOf(owner), func(ctx context.Context, c *sdk.Client) error { return c.DeleteVCard(ctx, owner) })
}

// GetPrivate implements sdk.Private.
func (b *Backend) GetPrivate(ctx context.Context, owner, name, namespace string) (string, error) {
	return call(ctx, b, "GetPrivate", hostOf(owner), func(ctx context.Context, c *sdk.Client) (string, error) {
		return c.GetPrivate(ctx, owner, name, namespace)
	})
}

// SetPrivate implements sdk.PrivateWriter.
func (b *Backend) SetPrivate(ctx context.Context, owner, name, namespace, xml string) error {
	return callErr(ctx, b, "SetPrivate", hostOf(owner), func(ctx context.Context, c *sdk.Client) error {
		return c.SetPrivate(ctx, owner, name, namespace, xml)
	})
}

// DeletePrivate implements sdk.PrivateWriter.
func (b *Backend) DeletePrivate(ctx context.Context, owner string) error {
	return callErr(ctx, b, "DeletePrivate", hostOf(owner), func(ctx context.Context, c *sdk.Client) error { return c.DeletePrivate(ctx, owner) })
}

// GetBlocklist implements sdk.Blocklist.
func (b *Backend) GetBlocklist(ctx context.Context, owner string) ([]string, error) {
	return call(ctx, b, "GetBlocklist", hostOf(owner), func(ctx context.Context, c *sdk.Client) ([]string, error) { return c.GetBlocklist(ctx, owner) })
}

// Block implements sdk.BlocklistWriter.
func (b *Backend) Block(ctx context.Context, owner string, jids []string) error {
	return callErr(ctx, b, "Block", hostOf(owner), func(ctx context.Context, c *sdk.Client) error { return c.Block(ctx, owner, jids) })
}

// Unblock implements sdk.BlocklistWriter.
func (b *Backend) Unblock(ctx context.Context, owner string, jids []string) error {
	return callErr(ctx, b, "Unblock", hostOf(owner), func(ctx context.Context, c *sdk.Client) error { return c.Unblock(ctx, owner, jids) })
}

// UnblockAll implements sdk.BlocklistWriter.
func (b *Backend) UnblockAll(ctx context.Context, owner string) error {
	return callErr(ctx, b, "UnblockAll", hostOf(owner), func(ctx context.Context, c *sdk.Client) error { return c.UnblockAll(ctx, owner) })
}

// GetTokens implements sdk.Tokens.
func (b *Backend) GetTokens(ctx context.Context, owner, agent string) ([]sdk.Token, error) {
	return call(ctx, b, "GetTokens", hostOf(owner), func(ctx context.Context, c *sdk.Client) ([]sdk.Token, error) { return c.GetTokens(ctx, owner, agent) })
}

// PutToken implements sdk.TokensWriter.
func (b *Backend) PutToken(ctx context.Context, t sdk.Token) error {
	return callErr(ctx, b, "PutToken", hostOf(t.Owner), func(ctx context.Context, c *sdk.Client) error { return c.PutToken(ctx, t) })
}

// DeleteToken implements sdk.TokensWriter.
func (b *Backend) DeleteToken(ctx context.Context, owner, agent string, hash []byte) error {
	return callErr(ctx, b, "DeleteToken", hostOf(owner), func(ctx context.Context, c *sdk.Client) error { return c.DeleteToken(ctx, owner, agent, hash) })
}

// DeleteTokens implements sdk.TokensWriter.
func (b *Backend) DeleteTokens(ctx context.Context, owner string) error {
	return callErr(ctx, b, "DeleteTokens", hostOf(owner), func(ctx context.Context, c *sdk.Client) error { return c.DeleteTokens(ctx, owner) })
}

// The MUC calls name the room's service as their host in the call log.

// GetMUCRoom implements sdk.MUC.
func (b *Backend) GetMUCRoom(ctx context.Context, room string) (sdk.MUCRoom, error) {
	return call(ctx, b, "GetMUCRoom", hostOf(room), func(ctx context.Context, c *sdk.Client) (sdk.MUCRoom, error) { return c.GetMUCRoom(ctx, room) })
}

// ListMUCRooms implements sdk.MUC.
func (b *Backend) ListMUCRooms(ctx context.Context, service string) ([]sdk.MUCRoom, error) {
	return call(ctx, b, "ListMUCRooms", service, func(ctx context.Context, c *sdk.Client) ([]sdk.MUCRoom, error) { return c.ListMUCRooms(ctx, service) })
}

// GetMUCAffiliations implements sdk.MUC.
func (b *Backend) GetMUCAffiliations(ctx context.Context, room string) ([]sdk.MUCAffiliation, error) {
	return call(ctx, b, "GetMUCAffiliations", hostOf(room), func(ctx context.Context, c *sdk.Client) ([]sdk.MUCAffiliation, error) {
		return c.GetMUCAffiliations(ctx, room)
	})
}

// PutMUCRoom implements sdk.MUCWriter.
func (b *Backend) PutMUCRoom(ctx context.Context, r sdk.MUCRoom) error {
	return callErr(ctx, b, "PutMUCRoom", hostOf(r.Room), func(ctx context.Context, c *sdk.Client) error { return c.PutMUCRoom(ctx, r) })
}

// DeleteMUCRoom implements sdk.MUCWriter.
func (b *Backend) DeleteMUCRoom(ctx context.Context, room string) error {
	return callErr(ctx, b, "DeleteMUCRoom", hostOf(room), func(ctx context.Context, c *sdk.Client) error { return c.DeleteMUCRoom(ctx, room) })
}

// SetMUCAffiliation implements sdk.MUCWriter.
func (b *Backend) SetMUCAffiliation(ctx context.Context, a sdk.MUCAffiliation) error {
	return callErr(ctx, b, "SetMUCAffiliation", hostOf(a.Room), func(ctx context.Context, c *sdk.Client) error { return c.SetMUCAffiliation(ctx, a) })
}

// AppendArchive implements sdk.Archive with a stream of one batch, bounded
// by the call timeout. The core's archive writer keeps a stream open with
// OpenArchiveStream instead.
func (b *Backend) AppendArchive(ctx context.Context, msgs []sdk.ArchivedMessage) error {
	return callErr(ctx, b, "AppendArchive", archiveHost(msgs), func(ctx context.Context, c *sdk.Client) error { return c.AppendArchive(ctx, msgs) })
}

// QueryArchive implements sdk.Archive.
func (b *Backend) QueryArchive(ctx context.Context, q sdk.ArchiveQuery) (sdk.ArchivePage, error) {
	return call(ctx, b, "QueryArchive", hostOf(q.Owner), func(ctx context.Context, c *sdk.Client) (sdk.ArchivePage, error) { return c.QueryArchive(ctx, q) })
}

// RetractArchived implements sdk.ArchiveRetractor; the core calls it only
// for a backend that declared ArchiveCapabilities.Retract.
func (b *Backend) RetractArchived(ctx context.Context, owner, stanzaID, tombstone string) error {
	return callErr(ctx, b, "RetractArchived", hostOf(owner), func(ctx context.Context, c *sdk.Client) error {
		return c.RetractArchived(ctx, owner, stanzaID, tombstone)
	})
}

// DeleteArchive implements sdk.Archive.
func (b *Backend) DeleteArchive(ctx context.Context, owner string) error {
	return callErr(ctx, b, "DeleteArchive", hostOf(owner), func(ctx context.Context, c *sdk.Client) error { return c.DeleteArchive(ctx, owner) })
}

// GetArchivePrefs implements sdk.Archive.
func (b *Backend) GetArchivePrefs(ctx context.Context, owner string) (sdk.ArchivePrefs, error) {
	return call(ctx, b, "GetArchivePrefs", hostOf(owner), func(ctx context.Context, c *sdk.Client) (sdk.ArchivePrefs, error) {
		return c.GetArchivePrefs(ctx, owner)
	})
}

// SetArchivePrefs implements sdk.Archive.
func (b *Backend) SetArchivePrefs(ctx context.Context, owner string, prefs sdk.ArchivePrefs) error {
	return callErr(ctx, b, "SetArchivePrefs", hostOf(owner), func(ctx context.Context, c *sdk.Client) error { return c.SetArchivePrefs(ctx, owner, prefs) })
}

// archiveHost names the host of a batch for the error log: the batches
// koi sends hold one host's messages or few, and the first names it well
// enough to find the plugin's trouble.
func archiveHost(msgs []sdk.ArchivedMessage) string {
	if len(msgs) == 0 {
		return ""
	}
	return hostOf(msgs[0].Owner)
}

// OpenArchiveStream opens an archive write stream on the current plugin
// process. It fails at once while the plugin is down; a stream dies with
// its process, and the writer then opens a new one here. No call timeout
// applies: the stream lives until ctx ends, and counts as a call in flight
// until then, so the host's Close waits for the writer to finish.
func (b *Backend) OpenArchiveStream(ctx context.Context) (*sdk.ArchiveStream, error) {
	c, err := b.acquire()
	if err != nil {
		return nil, err
	}
	s, err := c.OpenArchiveStream(ctx)
	if err != nil {
		b.release()
		if errors.Is(err, sdk.ErrUnavailable) {
			b.poke()
		}
		return nil, fmt.Errorf("plugin %q: archive stream: %w", b.spec.Name, err)
	}
	context.AfterFunc(ctx, b.release)
	return s, nil
}
