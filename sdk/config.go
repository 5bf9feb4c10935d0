package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Config is the plugin's configuration block from config.hcl (the
// `config = { ... }` object of its plugin block), as JSON.
type Config struct {
	Raw []byte
}

// Decode unmarshals the configuration into v, a pointer to a struct with
// json tags. A key v has no field for is an error naming the key, so that a
// typo in config.hcl is reported rather than silently ignored. An empty
// configuration leaves v untouched. Errors are a *ConfigErrors, which wraps
// ErrInvalid.
func (c Config) Decode(v any) error {
	raw := bytes.TrimSpace(c.Raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		key, msg := describeJSONError(err)
		return &ConfigErrors{Prefix: "config", Problems: []ConfigProblem{{Key: key, Msg: msg}}}
	}
	if dec.More() {
		return &ConfigErrors{Prefix: "config", Problems: []ConfigProblem{{Msg: "trailing data after the configuration object"}}}
	}
	return nil
}

// describeJSONError rewords encoding/json's errors in terms of config keys:
// the key at fault ("" when there is none) and what is wrong with it.
func describeJSONError(err error) (key, msg string) {
	// encoding/json reports an unknown field only as text.
	const unknown = "json: unknown field "
	if msg := err.Error(); strings.HasPrefix(msg, unknown) {
		name := strings.TrimPrefix(msg, unknown)
		if s, err := strconv.Unquote(name); err == nil {
			name = s
		}
		return name, "unknown key"
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return typeErr.Field, fmt.Sprintf("want %v, got %s", typeErr.Type, typeErr.Value)
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return "", fmt.Sprintf("malformed JSON at byte %d: %v", syntaxErr.Offset, err)
	}
	return "", err.Error()
}
