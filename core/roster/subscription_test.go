package roster

import (
	"testing"

	"github.com/koi-im/koi/sdk"
)

func TestSubscriptionChanges(t *testing.T) {
	states := []string{sdk.SubNone, sdk.SubTo, sdk.SubFrom, sdk.SubBoth}
	// Each state as the pair (to, from) it stands for.
	dirs := map[string][2]bool{sdk.SubNone: {false, false}, sdk.SubTo: {true, false}, sdk.SubFrom: {false, true}, sdk.SubBoth: {true, true}}
	state := func(to, from bool) string {
		for s, d := range dirs {
			if d == [2]bool{to, from} {
				return s
			}
		}
		t.Fatal("no state")
		return ""
	}
	for _, s := range states {
		d := dirs[s]
		for name, got := range map[string][2]string{
			"AddFrom":    {AddFrom(s), state(d[0], true)},
			"AddTo":      {AddTo(s), state(true, d[1])},
			"RemoveFrom": {RemoveFrom(s), state(d[0], false)},
			"RemoveTo":   {RemoveTo(s), state(false, d[1])},
		} {
			if got[0] != got[1] {
				t.Errorf("%s(%s) = %s, want %s", name, s, got[0], got[1])
			}
		}
	}
}
