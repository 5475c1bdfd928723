package grpcx

import (
	"context"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
)

// BreakerError is the error a breaker interceptor returns for a call it
// rejected. Its GRPCStatus is codes.Unavailable, so status.Code and other
// interceptors see an ordinary gRPC error, and it unwraps to the breaker's
// [*breaker.OpenError], so errors.Is(err, breaker.ErrOpen) (or
// breaker.ErrHalfOpenFull) and errors.As still work.
type BreakerError struct {
	// Err is the breaker's rejection, an *breaker.OpenError.
	Err error
}

// Error returns the breaker's message.
func (e *BreakerError) Error() string { return e.Err.Error() }

// Unwrap returns the breaker's rejection.
func (e *BreakerError) Unwrap() error { return e.Err }

// GRPCStatus returns codes.Unavailable with the breaker's message.
func (e *BreakerError) GRPCStatus() *status.Status {
	return status.New(codes.Unavailable, e.Err.Error())
}

// breakerClassify returns the classifier for b: Config.Classify if set,
// else [Classify].
func breakerClassify(b *breaker.Breaker) bulwark.Classifier {
	if c := b.Classifier(); c != nil {
		return c
	}
	return Classify
}

// UnaryClientBreaker returns an interceptor that guards each call with the
// breaker of its full method name ("/pkg.Service/Method") from s, so one
// failing method does not cut off the others. Outcomes are classified by
// [Classify] (unless the Set's Config.Classify is set). A rejected call
// never reaches the network and returns a [*BreakerError] (Unavailable).
// A panicking invoker is recorded as a failure and the panic continues.
func UnaryClientBreaker(s *breaker.Set) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		b := s.Get(method)
		t, err := b.Allow()
		if err != nil {
			return &BreakerError{Err: err}
		}
		finished := false
		defer func() {
			if !finished {
				b.Record(t, bulwark.Failure)
			}
		}()
		err = invoker(ctx, method, req, reply, cc, opts...)
		finished = true
		b.Record(t, breakerClassify(b)(ctx, err))
		return err
	}
}

// StreamClientBreaker returns an interceptor that guards each stream with
// the breaker of its full method name from s. A stream's outcome is known
// when it ends: RecvMsg returning io.EOF is a success, any other error is
// classified by [Classify] (or the Set's Config.Classify); for a stream
// without server streaming, the first RecvMsg returning nil is the final
// response and a success. The outcome is recorded exactly once. A stream
// that is abandoned before it ends records nothing: in the closed state
// that loses one sample, and in half-open the probe slot it holds is
// freed by HalfOpenMaxWait.
func StreamClientBreaker(s *breaker.Set) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
		streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		b := s.Get(method)
		t, err := b.Allow()
		if err != nil {
			return nil, &BreakerError{Err: err}
		}
		classify := breakerClassify(b)
		finished := false
		defer func() {
			if !finished {
				b.Record(t, bulwark.Failure)
			}
		}()
		cs, err := streamer(ctx, desc, cc, method, opts...)
		finished = true
		if err != nil {
			b.Record(t, classify(ctx, err))
			return nil, err
		}
		return &breakerStream{ClientStream: cs, b: b, t: t, ctx: ctx, classify: classify,
			unaryResponse: !desc.ServerStreams}, nil
	}
}

// breakerStream records the outcome of a stream when RecvMsg ends it.
type breakerStream struct {
	grpc.ClientStream
	b             *breaker.Breaker
	t             breaker.Ticket
	ctx           context.Context
	classify      bulwark.Classifier
	unaryResponse bool
	once          sync.Once
}

func (s *breakerStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	switch {
	case err == io.EOF:
		s.record(bulwark.Success)
	case err != nil:
		s.record(s.classify(s.ctx, err))
	case s.unaryResponse:
		s.record(bulwark.Success)
	}
	return err
}

func (s *breakerStream) record(o bulwark.Outcome) {
	s.once.Do(func() { s.b.Record(s.t, o) })
}
