package sdk

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestErrorsSurviveTheWire(t *testing.T) {
	tests := []struct {
		err  error
		code codes.Code
		is   []error
	}{
		{fmt.Errorf("user alice: %w", ErrNotFound), codes.NotFound, []error{ErrNotFound}},
		{fmt.Errorf("user alice: %w", ErrExists), codes.AlreadyExists, []error{ErrExists}},
		{fmt.Errorf("ldap: %w", ErrReadOnly), codes.PermissionDenied, []error{ErrReadOnly}},
		{fmt.Errorf("db down: %w", ErrUnavailable), codes.Unavailable, []error{ErrUnavailable}},
		{fmt.Errorf("%w: empty user", ErrInvalid), codes.InvalidArgument, []error{ErrInvalid}},
		{fmt.Errorf("no archive: %w", errors.ErrUnsupported), codes.Unimplemented, []error{errors.ErrUnsupported}},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), codes.DeadlineExceeded, []error{ErrUnavailable, context.DeadlineExceeded}},
		{errors.New("disk full"), codes.Unknown, nil},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			st := toStatus(tt.err)
			if got := status.Code(st); got != tt.code {
				t.Errorf("code = %v, want %v", got, tt.code)
			}
			back := fromStatus(context.Background(), st)
			for _, want := range tt.is {
				if !errors.Is(back, want) {
					t.Errorf("%v is not %v", back, want)
				}
			}
			for _, other := range []error{ErrNotFound, ErrExists, ErrReadOnly, ErrUnavailable, ErrInvalid} {
				if errors.Is(back, other) && !errors.Is(tt.err, other) && tt.code != codes.DeadlineExceeded {
					t.Errorf("%v is also %v", back, other)
				}
			}
			if tt.code == codes.Unknown {
				if back.Error() != "backend error (Unknown): disk full" {
					t.Errorf("text = %q", back.Error())
				}
			} else if back.Error() != tt.err.Error() {
				t.Errorf("text = %q, want the backend's %q", back.Error(), tt.err.Error())
			}
		})
	}
	if toStatus(nil) != nil || fromStatus(context.Background(), nil) != nil {
		t.Error("nil error did not stay nil")
	}
}

func TestCallerDeadlineIsUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	err := fromStatus(ctx, status.Error(codes.DeadlineExceeded, "context deadline exceeded"))
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("caller deadline: %v", err)
	}
	err = fromStatus(context.Background(), errors.New("not a status"))
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("transport failure: %v", err)
	}
}
