package sdk

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// A gRPC deadline travels as the time left (grpc-timeout), which the
// plugin counts from when it reads the call. A plugin that was stalled
// meanwhile (stopped, swapped out, starved of CPU) would read a call the
// host gave up on long ago, with its full time still ahead, and run it: a
// write the host had already answered as failed would land after all.
// So the host also sends the deadline as a point in time, which the
// plugin keeps. Host and plugin share a clock: the plugin is a process of
// the same machine.
const deadlineKey = "koi-deadline"

// DialOptions are the gRPC options a host dials a plugin with: its calls
// carry their deadline as a point in time too.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithChainUnaryInterceptor(sendDeadline)}
}

func sendDeadline(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if d, ok := ctx.Deadline(); ok {
		ctx = metadata.AppendToOutgoingContext(ctx, deadlineKey, strconv.FormatInt(d.UnixNano(), 10))
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// keepDeadline refuses a call whose host gave up on it before it began,
// and ends the others at the host's deadline.
func keepDeadline(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	v := metadata.ValueFromIncomingContext(ctx, deadlineKey)
	if len(v) != 1 {
		return handler(ctx, req) // a host that does not send it
	}
	ns, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil {
		return handler(ctx, req)
	}
	d := time.Unix(0, ns)
	if !time.Now().Before(d) {
		return nil, status.Errorf(codes.DeadlineExceeded, "%s: the host gave up on this call before it began", info.FullMethod)
	}
	ctx, cancel := context.WithDeadline(ctx, d)
	defer cancel()
	return handler(ctx, req)
}

// serverOptions are the gRPC server options of a served plugin.
func serverOptions(log Logger, opts []grpc.ServerOption) []grpc.ServerOption {
	return append(opts, grpc.ChainUnaryInterceptor(recoverUnary(log), keepDeadline))
}
