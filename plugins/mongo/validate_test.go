package mongobackend

import (
	"testing"

	"github.com/koi-im/koi/sdk"
)

func TestValidate(t *testing.T) {
	rep := sdk.Validate(Validate, sdk.Config{Raw: []byte(`{"uri": "mongodb://h/", "fulltext": true}`)})
	want := sdk.Capabilities{
		Auth:   sdk.AuthCapabilities{Access: sdk.AccessReadWrite, SCRAM: true},
		Roster: sdk.AccessReadWrite, Offline: sdk.AccessReadWrite, VCard: sdk.AccessReadWrite, Private: sdk.AccessReadWrite,
		Blocklist: sdk.AccessReadWrite, Tokens: sdk.AccessReadWrite, MUC: sdk.AccessReadWrite, PubSub: sdk.AccessReadWrite,
		Archive:     sdk.ArchiveCapabilities{Access: sdk.AccessReadWrite, FullText: true, Retract: true},
		RosterBatch: true,
	}
	if !rep.OK || rep.Capabilities != want {
		t.Errorf("report %+v, want OK with %+v", rep, want)
	}
	rep = sdk.Validate(Validate, sdk.Config{Raw: []byte(`{"uri": "http://h/", "retention_days": -1}`)})
	if rep.OK || len(rep.Problems) != 2 || rep.Problems[0].Key != "uri" || rep.Problems[1].Key != "retention_days" {
		t.Errorf("problems %+v, want uri and retention_days", rep.Problems)
	}
}
