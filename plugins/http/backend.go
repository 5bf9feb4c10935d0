package httpbackend

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/koi-im/koi/sdk"
)

// Backend serves the configured features by calling the service. It
// implements every feature interface; Capabilities says which of them koi
// may call.
type Backend struct {
	set Settings
	c   *client
}

// New is the plugin's sdk.Factory.
func New(_ context.Context, cfg sdk.Config, log hclog.Logger) (sdk.Backend, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	set, err := ParseConfig(cfg)
	if err != nil {
		return nil, err
	}
	c, err := newClient(set, log)
	if err != nil {
		return nil, err
	}
	log.Info("http backend ready", "base_url", set.BaseURL.Redacted(), "features", set.features(), "auth_style", set.AuthStyle)
	return &Backend{set: set, c: c}, nil
}

func (b *Backend) Capabilities() sdk.Capabilities {
	var caps sdk.Capabilities
	caps.Auth.Access = b.set.Access[featureAuth]
	caps.Roster = b.set.Access[featureRoster]
	caps.Archive.Access = b.set.Access[featureArchive]
	caps.Archive.FullText = b.set.ArchiveFullText
	return caps
}

func (b *Backend) Close() error {
	b.c.close()
	return nil
}

// checkOwner refuses an empty owner before asking the service.
func checkOwner(owner string) error {
	if owner == "" {
		return fmt.Errorf("%w: empty owner", sdk.ErrInvalid)
	}
	return nil
}
