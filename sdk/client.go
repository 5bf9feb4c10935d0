package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/koi-im/koi/sdk/pb"
)

// Client is the host side of the wire: it implements every feature
// interface of backend.go by calling the plugin over gRPC. Errors come back
// as the sentinel errors the backend returned (errors.Is works); a broken
// connection or an expired deadline is ErrUnavailable, a feature the backend
// does not serve is errors.ErrUnsupported.
//
// Client does not check capabilities itself: the plugin refuses what its
// backend did not declare.
type Client struct {
	plugin    pb.PluginClient
	auth      pb.AuthClient
	authAdmin pb.AuthAdminClient
	roster    pb.RosterClient
	offline   pb.OfflineClient
	vcard     pb.VCardClient
	private   pb.PrivateClient
	archive   pb.ArchiveClient
	blocklist pb.BlocklistClient
	tokens    pb.TokensClient
	muc       pb.MUCClient
	pubsub    pb.PubSubClient
}

// NewClient returns a Client calling the plugin over conn.
func NewClient(conn grpc.ClientConnInterface) *Client {
	return &Client{
		plugin:    pb.NewPluginClient(conn),
		auth:      pb.NewAuthClient(conn),
		authAdmin: pb.NewAuthAdminClient(conn),
		roster:    pb.NewRosterClient(conn),
		offline:   pb.NewOfflineClient(conn),
		vcard:     pb.NewVCardClient(conn),
		private:   pb.NewPrivateClient(conn),
		archive:   pb.NewArchiveClient(conn),
		blocklist: pb.NewBlocklistClient(conn),
		tokens:    pb.NewTokensClient(conn),
		muc:       pb.NewMUCClient(conn),
		pubsub:    pb.NewPubSubClient(conn),
	}
}

var (
	_ Auth              = (*Client)(nil)
	_ AuthAdmin         = (*Client)(nil)
	_ Roster            = (*Client)(nil)
	_ RosterWriter      = (*Client)(nil)
	_ RosterBatchWriter = (*Client)(nil)
	_ ArchiveRetractor  = (*Client)(nil)
	_ Offline           = (*Client)(nil)
	_ VCard             = (*Client)(nil)
	_ VCardWriter       = (*Client)(nil)
	_ Private           = (*Client)(nil)
	_ PrivateWriter     = (*Client)(nil)
	_ Archive           = (*Client)(nil)
	_ Blocklist         = (*Client)(nil)
	_ BlocklistWriter   = (*Client)(nil)
	_ Tokens            = (*Client)(nil)
	_ TokensWriter      = (*Client)(nil)
	_ MUC               = (*Client)(nil)
	_ MUCWriter         = (*Client)(nil)
	_ Pinger            = (*Client)(nil)
)

// call runs one RPC and turns its status into a Go error.
func call[Req, Resp any](ctx context.Context, rpc func(context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	resp, err := rpc(ctx, req)
	if err != nil {
		var zero Resp
		if unsendable(err) {
			return zero, fmt.Errorf("%w: %s", ErrInvalid, status.Convert(err).Message())
		}
		return zero, fromStatus(ctx, err)
	}
	return resp, nil
}

// unsendable recognises a request gRPC refused to encode, which never left
// the host: a string that is not valid UTF-8, which proto3 cannot carry.
// Sent again it fails again, so it is invalid, not a backend failure.
func unsendable(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.Internal && strings.HasPrefix(st.Message(), "grpc: error while marshaling")
}

// Configure sends the plugin its configuration (JSON) and returns the
// capabilities its backend declares.
func (c *Client) Configure(ctx context.Context, cfg []byte) (Capabilities, error) {
	resp, err := call(ctx, c.plugin.Configure, &pb.ConfigureRequest{Config: cfg})
	if err != nil {
		return Capabilities{}, err
	}
	return capsFromPB(resp.GetCapabilities()), nil
}

// Ping checks that the plugin answers and that its backend is healthy.
func (c *Client) Ping(ctx context.Context) error {
	_, err := call(ctx, c.plugin.Ping, &pb.PingRequest{})
	return err
}

// UserExists implements Auth.
func (c *Client) UserExists(ctx context.Context, host, user string) (bool, error) {
	resp, err := call(ctx, c.auth.UserExists, &pb.UserRequest{Host: host, User: user})
	return resp.GetValue(), err
}

// CheckPassword implements Auth.
func (c *Client) CheckPassword(ctx context.Context, host, user, password string) (bool, error) {
	resp, err := call(ctx, c.auth.CheckPassword, &pb.CheckPasswordRequest{Host: host, User: user, Password: password})
	return resp.GetValue(), err
}

// SCRAMCredentials implements Auth.
func (c *Client) SCRAMCredentials(ctx context.Context, host, user, hash string) (SCRAMCredentials, error) {
	resp, err := call(ctx, c.auth.SCRAMCredentials, &pb.SCRAMCredentialsRequest{Host: host, User: user, Hash: hash})
	if err != nil {
		return SCRAMCredentials{}, err
	}
	return scramFromPB(resp), nil
}

// CreateUser implements AuthAdmin.
func (c *Client) CreateUser(ctx context.Context, host, user, password string) error {
	_, err := call(ctx, c.authAdmin.CreateUser, &pb.PasswordRequest{Host: host, User: user, Password: password})
	return err
}

// SetPassword implements AuthAdmin.
func (c *Client) SetPassword(ctx context.Context, host, user, password string) error {
	_, err := call(ctx, c.authAdmin.SetPassword, &pb.PasswordRequest{Host: host, User: user, Password: password})
	return err
}

// DeleteUser implements AuthAdmin.
func (c *Client) DeleteUser(ctx context.Context, host, user string) error {
	_, err := call(ctx, c.authAdmin.DeleteUser, &pb.UserRequest{Host: host, User: user})
	return err
}

// ListUsers implements AuthAdmin.
func (c *Client) ListUsers(ctx context.Context, host string) ([]string, error) {
	resp, err := call(ctx, c.authAdmin.ListUsers, &pb.ListUsersRequest{Host: host})
	return resp.GetUsers(), err
}

// GetRoster implements Roster.
func (c *Client) GetRoster(ctx context.Context, owner string) (RosterState, error) {
	resp, err := call(ctx, c.roster.GetRoster, &pb.OwnerRequest{Owner: owner})
	if err != nil {
		return RosterState{}, err
	}
	return rosterFromPB(resp), nil
}

// SetItem implements RosterWriter.
func (c *Client) SetItem(ctx context.Context, owner string, item RosterItem) (string, error) {
	resp, err := call(ctx, c.roster.SetItem, &pb.SetItemRequest{Owner: owner, Item: rosterItemToPB(item)})
	return resp.GetVersion(), err
}

// DeleteItem implements RosterWriter.
func (c *Client) DeleteItem(ctx context.Context, owner, contact string) (string, error) {
	resp, err := call(ctx, c.roster.DeleteItem, &pb.ContactRequest{Owner: owner, Contact: contact})
	return resp.GetVersion(), err
}

// SetPending implements RosterWriter.
func (c *Client) SetPending(ctx context.Context, owner string, p PendingSubscription) error {
	_, err := call(ctx, c.roster.SetPending, &pb.SetPendingRequest{Owner: owner, Pending: pendingToPB(p)})
	return err
}

// DeletePending implements RosterWriter.
func (c *Client) DeletePending(ctx context.Context, owner, contact string) error {
	_, err := call(ctx, c.roster.DeletePending, &pb.ContactRequest{Owner: owner, Contact: contact})
	return err
}

// ApplyRosterChanges implements RosterBatchWriter. Call it only when the
// backend declared Capabilities.RosterBatch: others answer Unimplemented.
func (c *Client) ApplyRosterChanges(ctx context.Context, changes []RosterChange) (map[string]string, error) {
	resp, err := call(ctx, c.roster.ApplyRosterChanges, rosterChangesToPB(changes))
	if err != nil {
		return nil, err
	}
	return resp.GetVersions(), nil
}

// DeleteRoster implements RosterWriter.
func (c *Client) DeleteRoster(ctx context.Context, owner string) error {
	_, err := call(ctx, c.roster.DeleteRoster, &pb.OwnerRequest{Owner: owner})
	return err
}

// Store implements Offline.
func (c *Client) Store(ctx context.Context, owner string, msg OfflineMessage) error {
	_, err := call(ctx, c.offline.Store, &pb.StoreRequest{Owner: owner, Message: offlineToPB(msg)})
	return err
}

// Count implements Offline.
func (c *Client) Count(ctx context.Context, owner string) (int, error) {
	resp, err := call(ctx, c.offline.Count, &pb.OwnerRequest{Owner: owner})
	return int(resp.GetCount()), err
}

// Pop implements Offline.
func (c *Client) Pop(ctx context.Context, owner string) ([]OfflineMessage, error) {
	resp, err := call(ctx, c.offline.Pop, &pb.OwnerRequest{Owner: owner})
	if err != nil {
		return nil, err
	}
	out := make([]OfflineMessage, 0, len(resp.GetMessages()))
	for _, m := range resp.GetMessages() {
		out = append(out, offlineFromPB(m))
	}
	return out, nil
}

// DeleteAll implements Offline.
func (c *Client) DeleteAll(ctx context.Context, owner string) error {
	_, err := call(ctx, c.offline.DeleteAll, &pb.OwnerRequest{Owner: owner})
	return err
}

// GetVCard implements VCard.
func (c *Client) GetVCard(ctx context.Context, owner string) (string, error) {
	resp, err := call(ctx, c.vcard.GetVCard, &pb.OwnerRequest{Owner: owner})
	return resp.GetXml(), err
}

// SetVCard implements VCardWriter.
func (c *Client) SetVCard(ctx context.Context, owner, vcard string) error {
	_, err := call(ctx, c.vcard.SetVCard, &pb.SetVCardRequest{Owner: owner, Vcard: vcard})
	return err
}

// DeleteVCard implements VCardWriter.
func (c *Client) DeleteVCard(ctx context.Context, owner string) error {
	_, err := call(ctx, c.vcard.DeleteVCard, &pb.OwnerRequest{Owner: owner})
	return err
}

// GetPrivate implements Private.
func (c *Client) GetPrivate(ctx context.Context, owner, name, namespace string) (string, error) {
	resp, err := call(ctx, c.private.GetPrivate, &pb.GetPrivateRequest{Owner: owner, Name: name, Namespace: namespace})
	return resp.GetXml(), err
}

// SetPrivate implements PrivateWriter.
func (c *Client) SetPrivate(ctx context.Context, owner, name, namespace, xml string) error {
	_, err := call(ctx, c.private.SetPrivate, &pb.SetPrivateRequest{Owner: owner, Name: name, Namespace: namespace, Xml: xml})
	return err
}

// DeletePrivate implements PrivateWriter.
func (c *Client) DeletePrivate(ctx context.Context, owner string) error {
	_, err := call(ctx, c.private.DeletePrivate, &pb.OwnerRequest{Owner: owner})
	return err
}

// GetBlocklist implements Blocklist.
func (c *Client) GetBlocklist(ctx context.Context, owner string) ([]string, error) {
	resp, err := call(ctx, c.blocklist.GetBlocklist, &pb.OwnerRequest{Owner: owner})
	return resp.GetJids(), err
}

// Block implements BlocklistWriter.
func (c *Client) Block(ctx context.Context, owner string, jids []string) error {
	_, err := call(ctx, c.blocklist.Block, &pb.BlocklistRequest{Owner: owner, Jids: jids})
	return err
}

// Unblock implements BlocklistWriter.
func (c *Client) Unblock(ctx context.Context, owner string, jids []string) error {
	_, err := call(ctx, c.blocklist.Unblock, &pb.BlocklistRequest{Owner: owner, Jids: jids})
	return err
}

// UnblockAll implements BlocklistWriter.
func (c *Client) UnblockAll(ctx context.Context, owner string) error {
	_, err := call(ctx, c.blocklist.UnblockAll, &pb.OwnerRequest{Owner: owner})
	return err
}

// GetTokens implements Tokens.
func (c *Client) GetTokens(ctx context.Context, owner, agent string) ([]Token, error) {
	resp, err := call(ctx, c.tokens.GetTokens, &pb.TokensRequest{Owner: owner, Agent: agent})
	if err != nil {
		return nil, err
	}
	out := make([]Token, 0, len(resp.GetTokens()))
	for _, t := range resp.GetTokens() {
		out = append(out, tokenFromPB(t))
	}
	return out, nil
}

// PutToken implements TokensWriter.
func (c *Client) PutToken(ctx context.Context, t Token) error {
	_, err := call(ctx, c.tokens.PutToken, tokenToPB(t))
	return err
}

// DeleteToken implements TokensWriter.
func (c *Client) DeleteToken(ctx context.Context, owner, agent string, hash []byte) error {
	_, err := call(ctx, c.tokens.DeleteToken, &pb.DeleteTokenRequest{Owner: owner, Agent: agent, Hash: hash})
	return err
}

// DeleteTokens implements TokensWriter.
func (c *Client) DeleteTokens(ctx context.Context, owner string) error {
	_, err := call(ctx, c.tokens.DeleteTokens, &pb.OwnerRequest{Owner: owner})
	return err
}

// GetMUCRoom implements MUC.
func (c *Client) GetMUCRoom(ctx context.Context, room string) (MUCRoom, error) {
	resp, err := call(ctx, c.muc.GetMUCRoom, &pb.MUCRoomRequest{Room: room})
	if err != nil {
		return MUCRoom{}, err
	}
	return mucRoomFromPB(resp)
}

// ListMUCRooms implements MUC.
func (c *Client) ListMUCRooms(ctx context.Context, service string) ([]MUCRoom, error) {
	resp, err := call(ctx, c.muc.ListMUCRooms, &pb.MUCServiceRequest{Service: service})
	if err != nil {
		return nil, err
	}
	out := make([]MUCRoom, 0, len(resp.GetRooms()))
	for _, r := range resp.GetRooms() {
		room, err := mucRoomFromPB(r)
		if err != nil {
			return nil, fmt.Errorf("plugin answered ListMUCRooms(%s) with a broken room: %w", service, err)
		}
		out = append(out, room)
	}
	return out, nil
}

// GetMUCAffiliations implements MUC.
func (c *Client) GetMUCAffiliations(ctx context.Context, room string) ([]MUCAffiliation, error) {
	resp, err := call(ctx, c.muc.GetMUCAffiliations, &pb.MUCRoomRequest{Room: room})
	if err != nil {
		return nil, err
	}
	out := make([]MUCAffiliation, 0, len(resp.GetAffiliations()))
	for _, a := range resp.GetAffiliations() {
		out = append(out, mucAffiliationFromPB(a))
	}
	return out, nil
}

// PutMUCRoom implements MUCWriter.
func (c *Client) PutMUCRoom(ctx context.Context, r MUCRoom) error {
	_, err := call(ctx, c.muc.PutMUCRoom, mucRoomToPB(r))
	return err
}

// DeleteMUCRoom implements MUCWriter.
func (c *Client) DeleteMUCRoom(ctx context.Context, room string) error {
	_, err := call(ctx, c.muc.DeleteMUCRoom, &pb.MUCRoomRequest{Room: room})
	return err
}

// SetMUCAffiliation implements MUCWriter.
func (c *Client) SetMUCAffiliation(ctx context.Context, a MUCAffiliation) error {
	_, err := call(ctx, c.muc.SetMUCAffiliation, mucAffiliationToPB(a))
	return err
}

// QueryArchive implements Archive.
func (c *Client) QueryArchive(ctx context.Context, q ArchiveQuery) (ArchivePage, error) {
	resp, err := call(ctx, c.archive.Query, archiveQueryToPB(q))
	if err != nil {
		return ArchivePage{}, err
	}
	return archivePageFromPB(resp), nil
}

// RetractArchived implements ArchiveRetractor. Call it only when the
// backend declared ArchiveCapabilities.Retract: others answer
// Unimplemented.
func (c *Client) RetractArchived(ctx context.Context, owner, stanzaID, tombstone string) error {
	_, err := call(ctx, c.archive.RetractMessage, &pb.RetractRequest{Owner: owner, StanzaId: stanzaID, Tombstone: tombstone})
	return err
}

// DeleteArchive implements Archive.
func (c *Client) DeleteArchive(ctx context.Context, owner string) error {
	_, err := call(ctx, c.archive.DeleteArchive, &pb.OwnerRequest{Owner: owner})
	return err
}

// GetArchivePrefs implements Archive.
func (c *Client) GetArchivePrefs(ctx context.Context, owner string) (ArchivePrefs, error) {
	resp, err := call(ctx, c.archive.GetPrefs, &pb.OwnerRequest{Owner: owner})
	if err != nil {
		return ArchivePrefs{}, err
	}
	return archivePrefsFromPB(resp), nil
}

// SetArchivePrefs implements Archive.
func (c *Client) SetArchivePrefs(ctx context.Context, owner string, prefs ArchivePrefs) error {
	_, err := call(ctx, c.archive.SetPrefs, &pb.SetArchivePrefsRequest{Owner: owner, Prefs: archivePrefsToPB(prefs)})
	return err
}

// AppendArchive implements Archive with a stream of one batch. Writers
// that send many batches keep one ArchiveStream open instead.
func (c *Client) AppendArchive(ctx context.Context, msgs []ArchivedMessage) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.OpenArchiveStream(ctx)
	if err != nil {
		return err
	}
	if err := st.Send(1, msgs); err != nil {
		if errors.Is(err, ErrInvalid) {
			return err // never sent
		}
		// The plugin may have ended the stream at once (a refused
		// write); its status, which Recv returns, says why.
		if _, _, rerr := st.Recv(); rerr != nil && !errors.Is(rerr, io.EOF) {
			return rerr
		}
		return err
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	id, outcome, err := st.Recv()
	switch {
	case err != nil:
		return err
	case id != 1:
		return fmt.Errorf("%w: archive stream acknowledged batch %d, not 1", ErrUnavailable, id)
	}
	return outcome
}

// ArchiveStream is the host's end of an archive Append stream: batches go
// out with Send, their acknowledgements come back, in order, from Recv.
// Send and Recv may be called from two goroutines, but neither from two
// at once.
type ArchiveStream struct {
	ctx context.Context
	s   pb.Archive_AppendClient
}

// OpenArchiveStream opens an Append stream; it lives until ctx ends,
// CloseSend is answered, or the plugin goes away.
func (c *Client) OpenArchiveStream(ctx context.Context) (*ArchiveStream, error) {
	s, err := c.archive.Append(ctx)
	if err != nil {
		return nil, fromStatus(ctx, err)
	}
	return &ArchiveStream{ctx: ctx, s: s}, nil
}

// Send sends one batch under id, an id the caller chooses and that comes
// back in its acknowledgement. An error wrapping ErrInvalid means the batch
// cannot be encoded (a string that is not valid UTF-8) and was not sent;
// any other error means the stream is broken, and Recv tells why.
func (a *ArchiveStream) Send(id uint64, msgs []ArchivedMessage) error {
	if err := a.s.Send(&pb.ArchiveBatch{Id: id, Messages: archivedListToPB(msgs)}); err != nil {
		if unsendable(err) {
			return fmt.Errorf("%w: %s", ErrInvalid, status.Convert(err).Message())
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: archive stream closed by the plugin", ErrUnavailable)
		}
		return fromStatus(a.ctx, err)
	}
	return nil
}

// CloseSend announces that no more batches come; Recv still returns the
// outstanding acknowledgements, then io.EOF.
func (a *ArchiveStream) CloseSend() error {
	if err := a.s.CloseSend(); err != nil {
		return fromStatus(a.ctx, err)
	}
	return nil
}

// Recv waits for the next acknowledgement: the batch's id and its outcome,
// nil when the batch is stored, otherwise the backend's error (errors.Is
// sees the sdk sentinels). err is a failure of the stream itself, after
// which nothing more is acknowledged; io.EOF after CloseSend means every
// batch was answered.
func (a *ArchiveStream) Recv() (id uint64, outcome, err error) {
	ack, err := a.s.Recv()
	if err == io.EOF {
		return 0, nil, io.EOF
	}
	if err != nil {
		return 0, nil, fromStatus(a.ctx, err)
	}
	if c := codes.Code(ack.GetCode()); c != codes.OK {
		outcome = fromStatus(a.ctx, status.Error(c, ack.GetError()))
	}
	return ack.GetId(), outcome, nil
}
