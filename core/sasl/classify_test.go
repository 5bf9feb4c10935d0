package sasl

import (
	"context"
	"testing"
)

// TestBadCredentials: only failures caused by the credentials count against
// a login throttle; probing, aborting and protocol errors do not.
func TestBadCredentials(t *testing.T) {
	s := testStore(t)
	ctx := context.Background()
	scramWith := func(user, pass string) error {
		n, err := New(SCRAMSHA256, s, tlsOpts)
		if err != nil {
			t.Fatal(err)
		}
		c, err := hashGen(SCRAMSHA256).NewClient(user, pass, "")
		if err != nil {
			t.Fatal(err)
		}
		return exchange(t, n, c.NewConversation())
	}
	plainWith := func(in string) error {
		n, err := New(Plain, s, tlsOpts)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = n.Step(ctx, []byte(in))
		return err
	}
	firstWith := func(mech, in string) error {
		n, err := New(mech, s, tlsOpts)
		if err != nil {
			return err
		}
		_, _, err = n.Step(ctx, []byte(in))
		return err
	}
	tests := []struct {
		name string
		err  error
		bad  bool
	}{
		{"SCRAM wrong password", scramWith("juliet", "wrong"), true},
		{"SCRAM unknown user", scramWith("nobody", "r0m30myr0m30"), true},
		{"PLAIN wrong password", plainWith("\x00juliet\x00wrong"), true},
		{"PLAIN unknown user", plainWith("\x00nobody\x00wrong"), true},
		{"PLAIN empty password", plainWith("\x00juliet\x00"), true},
		{"PLAIN malformed", plainWith("juliet"), false},
		{"SCRAM malformed", firstWith(SCRAMSHA256, "q,,n=juliet,r=abc"), false},
		{"mechanism not offered", firstWith("X-NOPE", "x"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := asFailure(t, tt.err)
			if got := f.BadCredentials(); got != tt.bad {
				t.Errorf("BadCredentials() = %v, want %v (%v)", got, tt.bad, f)
			}
		})
	}
	if (*Failure)(nil).BadCredentials() {
		t.Error("a nil Failure has bad credentials")
	}
}
