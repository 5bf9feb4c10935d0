package httpbackend

import (
	"context"
	"fmt"
	"log/slog"

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
func New(_ context.Context, cfg sdk.Config, log sdk.Logger) (sdk.Backend, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
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

// Capabilities implements sdk.Backend: what the config says the service
// serves.
func (b *Backend) Capabilities() sdk.Capabilities { return b.set.capabilities() }

func (s Settings) capabilities() sdk.Capabilities {
	var caps sdk.Capabilities
	caps.Auth.Access = s.Access[featureAuth]
	caps.Roster = s.Access[featureRoster]
	caps.Archive.Access = s.Access[featureArchive]
	caps.Archive.FullText = s.ArchiveFullText
	caps.Archive.Retract = s.ArchiveRetract
	caps.RosterBatch = s.RosterBatch
	return caps
}

// Validate is the plugin's sdk.Validator: the config parsed strictly,
// without calling the service.
func Validate(cfg sdk.Config) (sdk.Validation, error) {
	set, err := ParseConfig(cfg)
	if err != nil {
		return sdk.Validation{}, err
	}
	return sdk.Validation{Capabilities: set.capabilities()}, nil
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
