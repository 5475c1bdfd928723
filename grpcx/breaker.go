package grpcx

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/breaker"
	"github.com/bulwark-go/bulwark/internal/bridge"
	"github.com/bulwark-go/bulwark/internal/outcome"
)

// BreakerError is the error a breaker interceptor returns for a call it
// rejected. Its GRPCStatus is codes.Unavailable, so status.Code and other
// interceptors see an ordinary gRPC error, and it unwraps to the breaker's
// [*breaker.OpenError], so errors.Is(err, breaker.ErrOpen) (or
// breaker.ErrHalfOpenFull), errors.As and the OpenError's RetryAfter
// (which package retry honours as pushback) still work.
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

// breakerOutcome judges a call guarded by b: the Set's Config.Classify if
// set, else [Classify].
func breakerOutcome(b *breaker.Breaker, ctx context.Context, err error) bulwark.Outcome {
	if c := bridge.BreakerClassifier(b); c != nil {
		return c(ctx, err)
	}
	return Classify(ctx, err)
}

// UnaryClientBreaker returns an interceptor that guards each call with the
// breaker of its full method name ("/pkg.Service/Method") from s, so one
// failing method does not cut off the others. Outcomes are judged by the
// Set's Config.Classify if set, else by [Classify], with bulwark's rules
// for contexts: a call whose ctx the caller cancelled (whatever the cause)
// is neutral, and an attempt cancelled with the cause
// [bulwark.ErrSuperseded] (a hedge's loser) is a failure. A rejected call
// never reaches the network and returns a [*BreakerError] (Unavailable).
// A panicking invoker is recorded as a failure and the panic continues.
// Where ctx carries a recording span, the breaker adds its span events
// ("bulwark.breaker.rejected", "bulwark.breaker.state_change") to it, as
// for HTTP calls, and OnStateChange receives ctx.
func UnaryClientBreaker(s *breaker.Set) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		b := s.Get(method)
		gen, start, err := bridge.BreakerAllow(ctx, b)
		if err != nil {
			return &BreakerError{Err: err}
		}
		returned := false
		defer outcome.OnAbort(&returned, func() { bridge.BreakerRecord(ctx, b, gen, start, bulwark.Failure) })
		err = invoker(ctx, method, req, reply, cc, opts...)
		returned = true
		bridge.BreakerRecord(ctx, b, gen, start, breakerOutcome(b, ctx, err))
		return err
	}
}

// StreamClientBreaker returns an interceptor that guards each stream with
// the breaker of its full method name from s. A stream's outcome is known
// when it ends: RecvMsg returning io.EOF is a success, any other error is
// judged as by [UnaryClientBreaker]; for a stream without server
// streaming, the first RecvMsg returning nil is the final response and a
// success. The outcome is recorded exactly once. A stream that is
// abandoned before it ends records nothing: in the closed state that
// loses one sample, and in half-open the probe slot it holds is freed by
// HalfOpenMaxWait. Span events go to the stream's ctx.
func StreamClientBreaker(s *breaker.Set) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
		streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		b := s.Get(method)
		gen, start, err := bridge.BreakerAllow(ctx, b)
		if err != nil {
			return nil, &BreakerError{Err: err}
		}
		returned := false
		defer outcome.OnAbort(&returned, func() { bridge.BreakerRecord(ctx, b, gen, start, bulwark.Failure) })
		cs, err := streamer(ctx, desc, cc, method, opts...)
		returned = true
		if err != nil {
			bridge.BreakerRecord(ctx, b, gen, start, breakerOutcome(b, ctx, err))
			return nil, err
		}
		return &breakerStream{ClientStream: cs, b: b, gen: gen, start: start, ctx: ctx,
			unaryResponse: !desc.ServerStreams}, nil
	}
}

// breakerStream records the outcome of a stream when RecvMsg ends it.
type breakerStream struct {
	grpc.ClientStream
	b             *breaker.Breaker
	gen           uint64
	start         int64
	ctx           context.Context
	unaryResponse bool
	once          sync.Once
}

func (s *breakerStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	switch {
	case err == io.EOF:
		s.record(bulwark.Success)
	case err != nil:
		s.record(breakerOutcome(s.b, s.ctx, err))
	case s.unaryResponse:
		s.record(bulwark.Success)
	}
	return err
}

func (s *breakerStream) record(o bulwark.Outcome) {
	s.once.Do(func() { bridge.BreakerRecord(s.ctx, s.b, s.gen, s.start, o) })
}

// UnaryServerBreaker returns a server interceptor that guards each
// handler with the breaker of its full method name from s: a service
// whose own dependency keeps failing sheds calls instead of piling them
// up. While the breaker rejects, calls are answered with a
// [*BreakerError] (codes.Unavailable) without running the handler, and,
// when the breaker knows how long it will reject (open, half-open: see
// [breaker.OpenError.RetryAfter]), with a "grpc-retry-pushback-ms"
// trailer holding that wait in milliseconds, rounded up, which gRPC's
// retry and package retry's interceptors honour. The handler's error is
// judged as by [UnaryClientBreaker], with the server-side ctx: a call
// whose client went away is neutral. A panicking handler is recorded as a
// failure and the panic continues.
func UnaryServerBreaker(s *breaker.Set) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		b := s.Get(info.FullMethod)
		gen, start, err := bridge.BreakerAllow(ctx, b)
		if err != nil {
			if md := breakerPushback(err); md != nil {
				_ = grpc.SetTrailer(ctx, md)
			}
			return nil, &BreakerError{Err: err}
		}
		returned := false
		defer outcome.OnAbort(&returned, func() { bridge.BreakerRecord(ctx, b, gen, start, bulwark.Failure) })
		resp, err := handler(ctx, req)
		returned = true
		bridge.BreakerRecord(ctx, b, gen, start, breakerOutcome(b, ctx, err))
		return resp, err
	}
}

// StreamServerBreaker is [UnaryServerBreaker] for streaming handlers: the
// stream's outcome is the handler's returned error.
func StreamServerBreaker(s *breaker.Set) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := ss.Context()
		b := s.Get(info.FullMethod)
		gen, start, err := bridge.BreakerAllow(ctx, b)
		if err != nil {
			if md := breakerPushback(err); md != nil {
				ss.SetTrailer(md)
			}
			return &BreakerError{Err: err}
		}
		returned := false
		defer outcome.OnAbort(&returned, func() { bridge.BreakerRecord(ctx, b, gen, start, bulwark.Failure) })
		err = handler(srv, ss)
		returned = true
		bridge.BreakerRecord(ctx, b, gen, start, breakerOutcome(b, ctx, err))
		return err
	}
}

// breakerPushback returns the trailer announcing a rejection's wait, or nil when
// the wait is unknown (ForcedOpen).
func breakerPushback(err error) metadata.MD {
	var oe *breaker.OpenError
	if !errors.As(err, &oe) {
		return nil
	}
	d := oe.RetryAfter()
	if d <= 0 {
		return nil
	}
	ms := int64((d + time.Millisecond - 1) / time.Millisecond)
	return metadata.Pairs("grpc-retry-pushback-ms", strconv.FormatInt(ms, 10))
}
