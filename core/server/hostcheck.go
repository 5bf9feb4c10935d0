package server

import (
	"fmt"
	"path/filepath"

	"github.com/koi-im/koi/core/config"
	"github.com/koi-im/koi/sdk"
)

// hostFeature is a host key that names plugins, and what it needs of them.
type hostFeature struct {
	key       string
	plugins   func(config.Host) []string
	access    func(sdk.Capabilities) sdk.Access
	needWrite string // why writes are needed; "" when reads do
}

func one(name string) []string {
	if name == "" {
		return nil
	}
	return []string{name}
}

var hostFeatures = []hostFeature{
	{key: "auth", plugins: func(h config.Host) []string { return h.Auth },
		access: func(c sdk.Capabilities) sdk.Access { return c.Auth.Access }},
	{key: "roster", plugins: func(h config.Host) []string { return one(h.Roster) },
		access: func(c sdk.Capabilities) sdk.Access { return c.Roster }},
	// Read only, whatever the plugin could do: the shared roster is merged
	// into each user's own and never written.
	{key: "shared_roster", plugins: func(h config.Host) []string { return one(h.SharedRoster) },
		access: func(c sdk.Capabilities) sdk.Access { return c.Roster }},
	{key: "offline", plugins: func(h config.Host) []string { return one(h.Offline) },
		access: func(c sdk.Capabilities) sdk.Access { return c.Offline }},
	{key: "vcard", plugins: func(h config.Host) []string { return one(h.VCard) },
		access: func(c sdk.Capabilities) sdk.Access { return c.VCard }},
	{key: "private", plugins: func(h config.Host) []string { return one(h.Private) },
		access: func(c sdk.Capabilities) sdk.Access { return c.Private }},
	{key: "archive", plugins: func(h config.Host) []string { return one(h.Archive) },
		access:    func(c sdk.Capabilities) sdk.Access { return c.Archive.Access },
		needWrite: "archiving needs writes"},
	{key: "blocklist", plugins: func(h config.Host) []string { return one(h.Blocklist) },
		access:    func(c sdk.Capabilities) sdk.Access { return c.Blocklist },
		needWrite: "blocking needs writes"},
	{key: "tokens", plugins: func(h config.Host) []string { return one(h.Tokens) },
		access:    func(c sdk.Capabilities) sdk.Access { return c.Tokens },
		needWrite: "FAST tokens are issued, rotated and revoked"},
	{key: "pubsub", plugins: func(h config.Host) []string { return one(h.PubSub) },
		access:    func(c sdk.Capabilities) sdk.Access { return c.PubSub },
		needWrite: "PEP and pubsub publish, subscribe and configure nodes"},
}

// HostProblems checks that every plugin a host names serves the feature it
// is named for. caps returns a plugin's capabilities; a plugin it does not
// know (not running, or not validated) is skipped. koi runs it at start
// with the capabilities the plugins declared, check-config with those their
// validate commands reported.
func HostProblems(cfg *config.Config, caps func(plugin string) (sdk.Capabilities, bool)) config.Errors {
	var problems config.Errors
	for _, h := range cfg.Hosts {
		for _, f := range hostFeatures {
			for _, name := range f.plugins(h) {
				c, ok := caps(name)
				if !ok {
					continue
				}
				key := fmt.Sprintf("host %q.%s", h.Name, f.key)
				switch a := f.access(c); {
				case !a.Readable():
					problems = append(problems, config.Problem{Key: key,
						Msg: fmt.Sprintf("plugin %s does not serve %s", describePlugin(cfg, name), f.key)})
				case f.needWrite != "" && !a.Writable():
					problems = append(problems, config.Problem{Key: key,
						Msg: fmt.Sprintf("plugin %s serves %s read-only; %s", describePlugin(cfg, name), f.key, f.needWrite)})
				}
			}
		}
	}
	return problems
}

// describePlugin names a plugin block and its binary, since the label
// alone ("directory") does not say which plugin it runs.
func describePlugin(cfg *config.Config, name string) string {
	if p, ok := cfg.Plugins[name]; ok && p.Command != "" {
		return fmt.Sprintf("%q (%s)", name, filepath.Base(p.Command))
	}
	return fmt.Sprintf("%q", name)
}
