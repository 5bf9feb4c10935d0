package sdk

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// toStatus turns an error a backend returned into a gRPC status whose code
// carries the sentinel it wraps, so that the host can rebuild it.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	code := codes.Unknown
	switch {
	case errors.Is(err, ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, ErrExists):
		code = codes.AlreadyExists
	case errors.Is(err, ErrReadOnly):
		code = codes.PermissionDenied
	case errors.Is(err, ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, ErrUnavailable):
		code = codes.Unavailable
	case errors.Is(err, errors.ErrUnsupported):
		code = codes.Unimplemented
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return status.Error(code, err.Error())
}

// remoteError is an error that came back over the wire. Its text is the
// backend's own message; errors.Is sees the sentinels it stands for.
type remoteError struct {
	msg   string
	kinds []error
}

func (e *remoteError) Error() string   { return e.msg }
func (e *remoteError) Unwrap() []error { return e.kinds }

// fromStatus rebuilds the sentinel error a status stands for. ctx is the
// caller's context: a deadline or cancellation of the caller's own is
// reported as such (and as ErrUnavailable, since the request may succeed
// later), and so is any failure of the transport itself.
func fromStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return &remoteError{msg: "plugin transport: " + err.Error(), kinds: []error{ErrUnavailable, err}}
	}
	msg := st.Message()
	kind := func(k ...error) error {
		if msg == "" {
			msg = k[0].Error()
		}
		return &remoteError{msg: msg, kinds: k}
	}
	switch st.Code() {
	case codes.NotFound:
		return kind(ErrNotFound)
	case codes.AlreadyExists:
		return kind(ErrExists)
	case codes.PermissionDenied:
		return kind(ErrReadOnly)
	case codes.InvalidArgument:
		return kind(ErrInvalid)
	case codes.Unimplemented:
		return kind(errors.ErrUnsupported)
	case codes.Unavailable:
		return kind(ErrUnavailable)
	case codes.DeadlineExceeded, codes.Canceled:
		if cerr := ctx.Err(); cerr != nil {
			return &remoteError{msg: fmt.Sprintf("%v: %v", ErrUnavailable, cerr), kinds: []error{ErrUnavailable, cerr}}
		}
		if st.Code() == codes.DeadlineExceeded {
			return kind(ErrUnavailable, context.DeadlineExceeded)
		}
		return kind(ErrUnavailable, context.Canceled)
	}
	return &remoteError{msg: fmt.Sprintf("backend error (%v): %s", st.Code(), msg)}
}
