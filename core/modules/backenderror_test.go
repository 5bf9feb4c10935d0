package modules

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/koi-im/koi/sdk"
)

// TestBackendError: every sdk error becomes the stanza error a client can
// act on, wrapped or not.
func TestBackendError(t *testing.T) {
	tests := []struct {
		err             error
		typ, condition  string
		textMentionsTry bool
	}{
		{sdk.ErrNotFound, "cancel", "item-not-found", false},
		{sdk.ErrExists, "cancel", "conflict", false},
		{sdk.ErrReadOnly, "cancel", "not-allowed", false},
		{sdk.ErrInvalid, "modify", "bad-request", false},
		{sdk.ErrUnavailable, "wait", "internal-server-error", true},
		{context.DeadlineExceeded, "wait", "internal-server-error", true},
		{errors.New("plugin said something odd"), "wait", "internal-server-error", true},
	}
	for _, tt := range tests {
		for _, err := range []error{tt.err, fmt.Errorf("roster get: %w", tt.err)} {
			t.Run(err.Error(), func(t *testing.T) {
				got := backendError(err)
				if got.Type != tt.typ || got.Condition != tt.condition {
					t.Errorf("backendError(%v) = %s/%s, want %s/%s", err, got.Type, got.Condition, tt.typ, tt.condition)
				}
				if tt.textMentionsTry && got.Text == "" {
					t.Errorf("backendError(%v) has no text saying to try again", err)
				}
			})
		}
	}
}
