package grpcx

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/outcome"
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

// Classify is bulwark's default classification of a gRPC call's error,
// made with ctx, the same rules as every other bulwark package: nil is a
// success; an attempt whose ctx was cancelled with the cause
// bulwark.ErrSuperseded (a hedge won) is a failure; a call whose ctx its
// caller cancelled, whatever the cause and whatever err says, is neutral;
// otherwise the status code decides, through [IsFailureCode]. An error that
// carries no status (status.FromError fails) has code Unknown and is a
// failure, as in grpc-go.
func Classify(ctx context.Context, err error) bulwark.Outcome {
	switch {
	case err == nil:
		return bulwark.Success
	case outcome.Superseded(ctx):
		return bulwark.Failure
	case outcome.CallerCanceled(ctx, err):
		return bulwark.Neutral
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return bulwark.Failure
	}
	if IsFailureCode(status.Code(err)) {
		return bulwark.Failure
	}
	return bulwark.Success
}
