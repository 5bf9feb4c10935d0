package sqlbackend

import (
	"strings"
	"testing"

	"github.com/koi-im/koi/sdk"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		raw      string
		problems []string // "key: msg" prefixes, in order
	}{
		{raw: `{"driver":"sqlite","dsn":"data/koi.db"}`},
		{raw: `{"driver":"sqlite","dsnn":"data/koi.db"}`, problems: []string{"dsnn: unknown key"}},
		{raw: `{}`, problems: []string{"driver: missing", "dsn: missing"}},
		{raw: `{"driver":"oracle","dsn":"x","conn_max_lifetime":"soon"}`,
			problems: []string{"conn_max_lifetime: ", "driver: unknown \"oracle\""}},
	}
	for _, tt := range tests {
		rep := sdk.Validate(Validate, sdk.Config{Raw: []byte(tt.raw)})
		if len(tt.problems) == 0 {
			if !rep.OK || rep.Capabilities != capabilities() {
				t.Errorf("%s: report %+v, want OK with the store's capabilities", tt.raw, rep)
			}
			continue
		}
		if rep.OK || len(rep.Problems) != len(tt.problems) {
			t.Errorf("%s: problems %v, want %q", tt.raw, rep.Problems, tt.problems)
			continue
		}
		for i, p := range rep.Problems {
			if !strings.HasPrefix(p.String(), tt.problems[i]) {
				t.Errorf("%s: problem %d is %q, want %q…", tt.raw, i, p, tt.problems[i])
			}
		}
	}
}
