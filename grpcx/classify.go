package grpcx

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bulwark-go/bulwark"
)

// IsFailureCode reports whether a gRPC status code counts as a failure of
// the dependency: Unavailable, DeadlineExceeded, ResourceExhausted, Aborted,
// Internal and Unknown.
func IsFailureCode(c codes.Code) bool {
	switch c {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted,
		codes.Aborted, codes.Internal, codes.Unknown:
		return true
	}
	return false
}

// Classify is bulwark's default classification of a gRPC call's error: nil
// is a success; a cancellation by the caller (ctx is cancelled and err is
// context.Canceled or has code Canceled) is neutral; otherwise the status
// code decides, through [IsFailureCode]. An error that carries no status
// (status.FromError fails) has code Unknown and is a failure, as in grpc-go.
func Classify(ctx context.Context, err error) bulwark.Outcome {
	if err == nil {
		return bulwark.Success
	}
	if ctx != nil && errors.Is(ctx.Err(), context.Canceled) {
		if errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled {
			return bulwark.Neutral
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return bulwark.Failure
	}
	if IsFailureCode(status.Code(err)) {
		return bulwark.Failure
	}
	return bulwark.Success
}
