package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
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

// Int is an integer config value written as a number or as a string of
// digits: an environment override (KOI_PLUGIN__X__CONFIG__KEY) of a key the
// file does not have arrives as a string. Use it in the struct Decode fills.
type Int int

// UnmarshalJSON implements json.Unmarshaler.
func (n *Int) UnmarshalJSON(b []byte) error {
	i, err := strconv.Atoi(string(bytes.Trim(b, `"`)))
	if err != nil {
		return typeError(b, reflect.TypeFor[int]())
	}
	*n = Int(i)
	return nil
}

// Bool is a boolean config value written as true/false or as a string of
// one, for the same reason as Int.
type Bool bool

// UnmarshalJSON implements json.Unmarshaler.
func (f *Bool) UnmarshalJSON(b []byte) error {
	v, err := strconv.ParseBool(string(bytes.Trim(b, `"`)))
	if err != nil {
		return typeError(b, reflect.TypeFor[bool]())
	}
	*f = Bool(v)
	return nil
}

// typeError is the error encoding/json adds the key to, so that Decode's
// message names it: pool_size: want int, got "many".
func typeError(got []byte, want reflect.Type) error {
	return &json.UnmarshalTypeError{Value: string(got), Type: want}
}
