package config

import (
	"errors"
	"strings"
	"testing"
)

const sharedRosterSample = `
listen "c2s" { address = "127.0.0.1:5222" }
plugin "store"     { command = "/bin/true" }
plugin "directory" { command = "/bin/true" }
host "localhost" {
  auth          = ["directory", "store"]
  roster        = "store"
  shared_roster = "directory"
}
`

func TestSharedRosterKey(t *testing.T) {
	cfg, err := Parse([]byte(sharedRosterSample), nil)
	if err != nil {
		t.Fatal(err)
	}
	if h := cfg.Hosts[0]; h.SharedRoster != "directory" || h.Roster != "store" {
		t.Errorf("host = %+v", h)
	}
	cfg, err = Parse([]byte(sharedRosterSample), []string{"KOI_HOST__LOCALHOST__SHARED_ROSTER="})
	if err != nil || cfg.Hosts[0].SharedRoster != "" {
		t.Errorf("an empty override turns it off: %+v, %v", cfg, err)
	}
	for _, tc := range []struct{ change, want string }{
		{`shared_roster = "directory"`, ""},
		{`shared_roster = "dir"`, `host "localhost".shared_roster: no plugin "dir"`},
		{`shared_roster = "store"`, `host "localhost".shared_roster: names the roster plugin "store"`},
		{`shared_roster = ["directory"]`, `host "localhost".shared_roster:`},
		{`shared_rooster = "directory"`, "did you mean shared_roster?"},
	} {
		src := strings.Replace(sharedRosterSample, `shared_roster = "directory"`, tc.change, 1)
		_, err := Parse([]byte(src), nil)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.change, err)
			}
			continue
		}
		var probs Errors
		if !errors.As(err, &probs) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want a problem containing %q", tc.change, err, tc.want)
		}
	}
}
