package clients

import (
	"reflect"
	"testing"
)

func TestParseLogLine(t *testing.T) {
	for _, tc := range []struct {
		in          string
		logger, msg string
		kv          map[string]string
	}{
		{`2026-12-04T15:47:30.872Z [INFO]  koi.c2s: authenticated: remote=127.0.0.1:40000 user=alice@localhost mechanism=SCRAM-SHA-256 channel_binding=none tls=1.3`,
			"koi.c2s", "authenticated", map[string]string{"remote": "127.0.0.1:40000", "user": "alice@localhost", "mechanism": "SCRAM-SHA-256", "channel_binding": "none", "tls": "1.3"}},
		{`2026-12-04T15:47:30.872Z [INFO]  koi.c2s: authentication failed: remote=127.0.0.1:57234 user="" host=localhost`,
			"koi.c2s", "authentication failed", map[string]string{"remote": "127.0.0.1:57234", "user": "", "host": "localhost"}},
		{`2026-12-04T15:47:30.872Z [INFO]  koi.c2s: login refused: tls=1.2 reason="too many failed attempts: try later" user=bob@localhost`,
			"koi.c2s", "login refused", map[string]string{"tls": "1.2", "reason": "too many failed attempts: try later", "user": "bob@localhost"}},
		{`2026-12-04T15:47:09.502Z [INFO]  koi: koi is ready: version=dev hosts=1`,
			"koi", "koi is ready", map[string]string{"version": "dev", "hosts": "1"}},
		{`2026-12-04T15:47:09.502Z [WARN]  koi: no keys here`, "koi", "no keys here", map[string]string{}},
	} {
		l, ok := parseLogLine(tc.in)
		if !ok || l.Logger != tc.logger || l.Msg != tc.msg || !reflect.DeepEqual(l.KV, tc.kv) {
			t.Errorf("parseLogLine(%q) = %q %q %v (ok %v), want %q %q %v", tc.in, l.Logger, l.Msg, l.KV, ok, tc.logger, tc.msg, tc.kv)
		}
	}
}

func TestAnalyseRun(t *testing.T) {
	window := `2026-12-04T15:47:30.871Z [INFO]  koi.c2s: authentication failed: remote=127.0.0.1:57234 user="" host=localhost
2026-12-04T15:47:30.872Z [INFO]  koi.c2s: authentication failed: remote=127.0.0.1:57234 user=a.r1 host=localhost
2026-12-04T15:47:30.872Z [INFO]  koi.c2s: authentication failed: remote=127.0.0.1:57235 user=peer host=localhost
2026-12-04T15:47:30.873Z [INFO]  koi.c2s: login refused: remote=127.0.0.1:57236 user=a.r1@localhost reason=throttled
2026-12-04T15:47:30.890Z [INFO]  koi.c2s: authenticated: remote=127.0.0.1:57237 tls=1.3 user=a.r1@localhost channel_binding=tls-exporter mechanism=SCRAM-SHA-256-PLUS
2026-12-04T15:47:30.890Z [INFO]  koi.c2s: authenticated: remote=127.0.0.1:57238 user=a.r10@localhost mechanism=PLAIN
2026-12-04T15:47:30.890Z [INFO]  koi.plugin.store: something else`
	r := analyseRun(window, "a.r1", "localhost")
	if r.Refused != 3 || r.Mechanism != "SCRAM-SHA-256-PLUS" || r.Binding != "tls-exporter" || r.TLS != "1.3" || len(r.Excerpt) != 4 {
		t.Errorf("analyseRun = %+v", r)
	}
}
