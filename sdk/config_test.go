package sdk

import (
	"errors"
	"strings"
	"testing"
)

func TestConfigDecode(t *testing.T) {
	type db struct {
		Driver string `json:"driver"`
		Pool   struct {
			Size int `json:"size"`
		} `json:"pool"`
	}
	tests := []struct {
		name    string
		raw     string
		want    db
		wantErr string
	}{
		{name: "empty", raw: "", want: db{Driver: "default"}},
		{name: "null", raw: "null", want: db{Driver: "default"}},
		{name: "empty object", raw: "{}", want: db{Driver: "default"}},
		{name: "values", raw: `{"driver":"sqlite","pool":{"size":4}}`, want: db{Driver: "sqlite", Pool: struct {
			Size int `json:"size"`
		}{4}}},
		{name: "unknown key", raw: `{"driver":"sqlite","dns":"x"}`, wantErr: `dns: unknown key`},
		{name: "unknown nested key", raw: `{"pool":{"max":4}}`, wantErr: `max: unknown key`},
		{name: "wrong type", raw: `{"pool":{"size":"four"}}`, wantErr: `pool.size: want int, got string`},
		{name: "not an object", raw: `[1]`, wantErr: "want sdk.db, got array"},
		{name: "malformed", raw: `{"driver":`, wantErr: "config:"},
		{name: "trailing data", raw: `{} {}`, wantErr: "trailing data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := db{Driver: "default"}
			err := Config{Raw: []byte(tt.raw)}.Decode(&got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Decode error = %v, want one containing %q", err, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("Decode error %v is not ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got != tt.want {
				t.Errorf("Decode = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestIntBool: numbers and booleans may come as strings (environment
// overrides), and a bad one is an error naming its key.
func TestIntBool(t *testing.T) {
	var v struct {
		N Int  `json:"n"`
		B Bool `json:"b"`
	}
	for _, raw := range []string{`{"n": 7, "b": true}`, `{"n": "7", "b": "true"}`} {
		if err := (Config{Raw: []byte(raw)}).Decode(&v); err != nil || v.N != 7 || !v.B {
			t.Errorf("Decode(%s) = %+v, %v; want 7, true", raw, v, err)
		}
	}
	for raw, key := range map[string]string{`{"n": "many"}`: "n", `{"b": "maybe"}`: "b"} {
		err := (Config{Raw: []byte(raw)}).Decode(&v)
		if err == nil || !strings.Contains(err.Error(), key+": want") {
			t.Errorf("Decode(%s) = %v, want an error naming %q", raw, err, key)
		}
	}
}
