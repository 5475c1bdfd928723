package grpcx

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bulwark-go/bulwark"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestClassify(t *testing.T) {
	live := context.Background()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	withCause, cancel2 := context.WithCancelCause(context.Background())
	cancel2(errors.New("user went away"))
	superseded, cancel3 := context.WithCancelCause(context.Background())
	cancel3(bulwark.ErrSuperseded)
	failing := []codes.Code{codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted, codes.Internal, codes.Unknown}
	passing := []codes.Code{codes.OK, codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.PermissionDenied,
		codes.FailedPrecondition, codes.OutOfRange, codes.Unimplemented, codes.DataLoss, codes.Unauthenticated, codes.Canceled}
	for _, c := range failing {
		if got := Classify(live, status.Error(c, "x")); got != bulwark.Failure {
			t.Errorf("%v = %v, want failure", c, got)
		}
	}
	for _, c := range passing {
		if c == codes.OK {
			continue
		}
		if got := Classify(live, status.Error(c, "x")); got != bulwark.Success {
			t.Errorf("%v = %v, want success", c, got)
		}
	}
	cases := []struct {
		name string
		ctx  context.Context
		err  error
		want bulwark.Outcome
	}{
		{"nil", live, nil, bulwark.Success},
		{"plain error is Unknown", live, errors.New("boom"), bulwark.Failure},
		{"caller cancelled, status", canceled, status.Error(codes.Canceled, "context canceled"), bulwark.Neutral},
		{"caller cancelled, ctx error", canceled, fmt.Errorf("x: %w", context.Canceled), bulwark.Neutral},
		{"caller cancelled, whatever the error says", canceled, status.Error(codes.Unavailable, "x"), bulwark.Neutral},
		{"caller cancelled with a cause", withCause, status.Error(codes.Canceled, "user went away"), bulwark.Neutral},
		{"superseded by a hedge", superseded, status.Error(codes.Canceled, "context canceled"), bulwark.Failure},
		{"deadline exceeded ctx error", live, context.DeadlineExceeded, bulwark.Failure},
		{"wrapped status", live, fmt.Errorf("call: %w", status.Error(codes.Unavailable, "x")), bulwark.Failure},
	}
	for _, c := range cases {
		if got := Classify(c.ctx, c.err); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
