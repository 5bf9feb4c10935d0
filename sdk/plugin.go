package sdk

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/koi-im/koi/sdk/pb"
)

// Handshake is what koi and a plugin must agree on before they talk.
// ProtocolVersion changes whenever koi_backend.proto changes incompatibly;
// the magic cookie only keeps the binary from being run by hand by mistake
// (it is not a security measure).
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "KOI_PLUGIN",
	MagicCookieValue: "koi-backend-5f0c1e7a9b2d4c68",
}

// PluginName is the single plugin a koi backend binary serves.
const PluginName = "backend"

// Factory builds the backend from its config. It is called once per plugin
// process, when the host calls Configure; an error fails the plugin's start
// and is shown to the operator. log writes to the host's log under the
// plugin's name; the backend may keep it for later.
type Factory func(ctx context.Context, cfg Config, log Logger) (Backend, error)

// GRPCPlugin is the go-plugin glue. On the plugin side it serves the backend
// Factory builds; on the host side it hands out a *Client. Plugins normally
// use Serve, which also closes the backend at exit; with GRPCPlugin given
// to plugin.Serve directly, nothing closes it.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin

	// Factory builds the backend; only the plugin side needs it.
	Factory Factory
	// Logger is given to Factory; nil means hclog JSON on stderr, which
	// the host folds into its own log.
	Logger Logger
}

// GRPCServer registers the backend services on s (plugin side).
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	log := p.Logger
	if log == nil {
		log = newPluginLogger(true)
	}
	registerServer(s, newServer(p.Factory, log))
	return nil
}

func registerServer(s grpc.ServiceRegistrar, srv *server) {
	pb.RegisterPluginServer(s, srv)
	pb.RegisterAuthServer(s, srv)
	pb.RegisterAuthAdminServer(s, srv)
	pb.RegisterRosterServer(s, srv)
	pb.RegisterOfflineServer(s, srv)
	pb.RegisterVCardServer(s, srv)
	pb.RegisterPrivateServer(s, srv)
	pb.RegisterArchiveServer(s, srv)
	pb.RegisterBlocklistServer(s, srv)
	pb.RegisterTokensServer(s, srv)
	pb.RegisterPubSubServer(s, srv)
}

// GRPCClient returns a *Client talking over conn (host side).
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return NewClient(conn), nil
}

// PluginMap is the plugin set for go-plugin's ServeConfig and ClientConfig.
// The host passes a nil Factory.
func PluginMap(f Factory) map[string]plugin.Plugin {
	return map[string]plugin.Plugin{PluginName: &GRPCPlugin{Factory: f}}
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)
