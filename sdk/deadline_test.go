package sdk

import (
	"context"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestKeepDeadline(t *testing.T) {
	info := &grpc.UnaryServerInfo{FullMethod: "/koi.VCard/Set"}
	at := func(d time.Time) context.Context {
		return metadata.NewIncomingContext(context.Background(), metadata.Pairs(deadlineKey, strconv.FormatInt(d.UnixNano(), 10)))
	}
	for _, tc := range []struct {
		name    string
		ctx     context.Context
		run     bool
		hasDead bool
	}{
		{"given up before it began", at(time.Now().Add(-time.Millisecond)), false, false},
		{"time left", at(time.Now().Add(time.Minute)), true, true},
		{"a host that does not send it", context.Background(), true, false},
		{"unreadable", metadata.NewIncomingContext(context.Background(), metadata.Pairs(deadlineKey, "soon")), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ran := false
			_, err := keepDeadline(tc.ctx, nil, info, func(ctx context.Context, _ any) (any, error) {
				ran = true
				if _, ok := ctx.Deadline(); ok != tc.hasDead {
					t.Errorf("handler's context has a deadline: %v, want %v", ok, tc.hasDead)
				}
				return nil, nil
			})
			if ran != tc.run {
				t.Fatalf("handler ran: %v, want %v", ran, tc.run)
			}
			if !tc.run && status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("refused call: %v, want DeadlineExceeded", err)
			}
		})
	}
}

func TestSendDeadline(t *testing.T) {
	d := time.Now().Add(time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), d)
	defer cancel()
	var got []string
	_ = sendDeadline(ctx, "/m", nil, nil, nil, func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
		md, _ := metadata.FromOutgoingContext(ctx)
		got = md.Get(deadlineKey)
		return nil
	})
	if len(got) != 1 || got[0] != strconv.FormatInt(d.UnixNano(), 10) {
		t.Fatalf("sent %v, want the deadline in nanoseconds", got)
	}
}
