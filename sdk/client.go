package sdk

import (
	"context"

	"google.golang.org/grpc"

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
	}
}

var (
	_ Auth          = (*Client)(nil)
	_ AuthAdmin     = (*Client)(nil)
	_ Roster        = (*Client)(nil)
	_ RosterWriter  = (*Client)(nil)
	_ Offline       = (*Client)(nil)
	_ VCard         = (*Client)(nil)
	_ VCardWriter   = (*Client)(nil)
	_ Private       = (*Client)(nil)
	_ PrivateWriter = (*Client)(nil)
	_ Pinger        = (*Client)(nil)
)

// call runs one RPC and turns its status into a Go error.
func call[Req, Resp any](ctx context.Context, rpc func(context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	resp, err := rpc(ctx, req)
	if err != nil {
		var zero Resp
		return zero, fromStatus(ctx, err)
	}
	return resp, nil
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
