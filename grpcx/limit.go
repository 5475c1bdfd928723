package grpcx

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/bridge"
	"github.com/bulwark-go/bulwark/limit"
)

// LimitError is the error a limit interceptor returns for a call it
// rejected. Its GRPCStatus is ResourceExhausted for a rate limit and
// Unavailable for a concurrency limit, so status.Code and other
// interceptors see an ordinary gRPC error; it unwraps to the limiter's
// [*limit.RejectedError], so errors.Is(err, limit.ErrRateLimited) (or
// limit.ErrConcurrencyLimited) and errors.As still work, and its
// RetryAfter is the wait when known (package retry honours it).
type LimitError struct {
	// Err is the limiter's rejection, a *limit.RejectedError.
	Err error
}

// Error returns the limiter's message.
func (e *LimitError) Error() string { return e.Err.Error() }

// Unwrap returns the limiter's rejection.
func (e *LimitError) Unwrap() error { return e.Err }

// RetryAfter returns the rejection's wait, 0 when unknown.
func (e *LimitError) RetryAfter() time.Duration {
	var re *limit.RejectedError
	if errors.As(e.Err, &re) {
		return re.RetryAfter()
	}
	return 0
}

// GRPCStatus returns ResourceExhausted for a rate limit, Unavailable for a
// concurrency limit, with the limiter's message.
func (e *LimitError) GRPCStatus() *status.Status {
	c := codes.Unavailable
	if errors.Is(e.Err, limit.ErrRateLimited) {
		c = codes.ResourceExhausted
	}
	return status.New(c, e.Err.Error())
}

// reject wraps a limiter's rejection for the wire, and on a server sets
// the grpc-retry-pushback-ms trailer when the wait is known.
func reject(ctx context.Context, err error, server bool) error {
	var re *limit.RejectedError
	if !errors.As(err, &re) {
		if ctx.Err() == nil {
			return err
		}
		return contextError(ctx, err) // the call's context ended
	}
	if d := re.RetryAfter(); server && d > 0 {
		ms := (d + time.Millisecond - 1) / time.Millisecond
		_ = grpc.SetTrailer(ctx, metadata.Pairs(pushbackKey, strconv.FormatInt(int64(ms), 10)))
	}
	return &LimitError{Err: err}
}

// ctxError is a call's context ending before a limiter let it through,
// as grpc-go reports it (Canceled, or DeadlineExceeded), keeping the
// context's cause for errors.Is and errors.As.
type ctxError struct {
	cause error
	code  codes.Code
}

func contextError(ctx context.Context, cause error) error {
	code := codes.Canceled
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		code = codes.DeadlineExceeded
	}
	return &ctxError{cause: cause, code: code}
}

func (e *ctxError) Error() string              { return e.cause.Error() }
func (e *ctxError) Unwrap() error              { return e.cause }
func (e *ctxError) GRPCStatus() *status.Status { return status.New(e.code, e.cause.Error()) }

// rateDecide admits one server call through l.
func rateDecide(ctx context.Context, l limit.Limiter) error {
	ok, wait := bridge.LimitDecide(l)
	if ok {
		return nil
	}
	return reject(ctx, &limit.RejectedError{Wait: wait}, true)
}

// UnaryServerLimit returns an interceptor that admits each call through l
// (a [*limit.Rate], a golang.org/x/time/rate *rate.Limiter, or any
// [limit.Limiter]) and rejects the others with a [*LimitError]
// (ResourceExhausted) without running the handler, setting the
// grpc-retry-pushback-ms trailer to the wait when l can tell it (a
// *limit.Rate or a *rate.Limiter can).
func UnaryServerLimit(l limit.Limiter) grpc.UnaryServerInterceptor {
	if l == nil {
		panic("grpcx: UnaryServerLimit called with a nil Limiter")
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := rateDecide(ctx, l); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerLimit is [UnaryServerLimit] for streams: each stream is one
// call, admitted or rejected when it opens.
func StreamServerLimit(l limit.Limiter) grpc.StreamServerInterceptor {
	if l == nil {
		panic("grpcx: StreamServerLimit called with a nil Limiter")
	}
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := rateDecide(ss.Context(), l); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

// PeerKey is the default key of the keyed interceptors: the host part of
// the calling peer's address (its IP for TCP), or "" when unknown.
func PeerKey(ctx context.Context, _ string) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	a := p.Addr.String()
	if host, _, err := net.SplitHostPort(a); err == nil {
		return host
	}
	return a
}

func keyedDecide(ctx context.Context, l limit.KeyedLimiter, key string) error {
	d := l.Decide(ctx, key)
	if d.Allowed {
		return nil
	}
	return reject(ctx, &limit.RejectedError{Wait: d.RetryAfter}, true)
}

// UnaryServerKeyedLimit returns an interceptor that admits each call
// through l (a [*limit.Keyed] or the distributed limiter of
// limit/redisstore) under key(ctx, fullMethod) — nil key means [PeerKey],
// one limit per client address — and rejects the others as
// [UnaryServerLimit] does.
func UnaryServerKeyedLimit(l limit.KeyedLimiter, key func(ctx context.Context, fullMethod string) string) grpc.UnaryServerInterceptor {
	if l == nil {
		panic("grpcx: UnaryServerKeyedLimit called with a nil KeyedLimiter")
	}
	if key == nil {
		key = PeerKey
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := keyedDecide(ctx, l, key(ctx, info.FullMethod)); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerKeyedLimit is [UnaryServerKeyedLimit] for streams.
func StreamServerKeyedLimit(l limit.KeyedLimiter, key func(ctx context.Context, fullMethod string) string) grpc.StreamServerInterceptor {
	if l == nil {
		panic("grpcx: StreamServerKeyedLimit called with a nil KeyedLimiter")
	}
	if key == nil {
		key = PeerKey
	}
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := keyedDecide(ss.Context(), l, key(ss.Context(), info.FullMethod)); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

// UnaryClientLimit returns an interceptor that holds each call back until
// l admits it, as [limit.RoundTripper] does: it waits for its turn under
// the call's context (failing at once when the deadline comes before the
// turn), or with [limit.NoWait] does not wait. A call l does not admit
// never reaches the network and returns a [*LimitError]
// (ResourceExhausted); if the call's context ended first, it returns an
// error with the status grpc-go gives such a call (Canceled, or
// DeadlineExceeded) that unwraps to the context's cause.
func UnaryClientLimit(l limit.Limiter, opts ...limit.Option) grpc.UnaryClientInterceptor {
	if l == nil {
		panic("grpcx: UnaryClientLimit called with a nil Limiter")
	}
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, callOpts ...grpc.CallOption) error {
		if err := bridge.LimitAdmit(ctx, l, opts); err != nil {
			return reject(ctx, err, false)
		}
		return invoker(ctx, method, req, reply, cc, callOpts...)
	}
}

// StreamClientLimit is [UnaryClientLimit] for streams: each stream is one
// call, held back until l admits it.
func StreamClientLimit(l limit.Limiter, opts ...limit.Option) grpc.StreamClientInterceptor {
	if l == nil {
		panic("grpcx: StreamClientLimit called with a nil Limiter")
	}
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
		streamer grpc.Streamer, callOpts ...grpc.CallOption) (grpc.ClientStream, error) {
		if err := bridge.LimitAdmit(ctx, l, opts); err != nil {
			return nil, reject(ctx, err, false)
		}
		return streamer(ctx, desc, cc, method, callOpts...)
	}
}

func concurrencyClassify(c limit.ConcurrencyLimiter) bulwark.Classifier {
	if f := bridge.LimitClassifier(c); f != nil {
		return f
	}
	return Classify
}

// UnaryServerConcurrency returns an interceptor that runs each call under
// a slot of c (a [*limit.Bulkhead] or a [*limit.Adaptive]) and rejects
// the calls it cannot seat with a [*LimitError] (Unavailable) without
// running the handler (a call whose client goes away while it is queued
// ends Canceled or DeadlineExceeded). The handler's error is judged by [Classify] (or an
// Adaptive's AdaptiveConfig.Classify); a panicking handler is a failure,
// and the panic goes on.
func UnaryServerConcurrency(c limit.ConcurrencyLimiter) grpc.UnaryServerInterceptor {
	if c == nil {
		panic("grpcx: UnaryServerConcurrency called with a nil ConcurrencyLimiter")
	}
	classify := concurrencyClassify(c)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		p, err := c.Acquire(ctx)
		if err != nil {
			return nil, reject(ctx, err, true)
		}
		returned := false
		defer func() {
			if !returned {
				p.Release(bulwark.Failure)
			}
		}()
		resp, err := handler(ctx, req)
		returned = true
		p.Release(classify(ctx, err))
		return resp, err
	}
}

// StreamServerConcurrency is [UnaryServerConcurrency] for streams: a
// stream holds its slot until its handler returns.
func StreamServerConcurrency(c limit.ConcurrencyLimiter) grpc.StreamServerInterceptor {
	if c == nil {
		panic("grpcx: StreamServerConcurrency called with a nil ConcurrencyLimiter")
	}
	classify := concurrencyClassify(c)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := ss.Context()
		p, err := c.Acquire(ctx)
		if err != nil {
			return reject(ctx, err, true)
		}
		returned := false
		defer func() {
			if !returned {
				p.Release(bulwark.Failure)
			}
		}()
		err = handler(srv, ss)
		returned = true
		p.Release(classify(ctx, err))
		return err
	}
}

// UnaryClientConcurrency returns an interceptor that sends each call
// under a slot of c; a call c rejects never reaches the network and
// returns a [*LimitError] (Unavailable), and a call whose context ends
// while it is queued for a slot (by a [*limit.Bulkhead] with a queue)
// returns Canceled or DeadlineExceeded, unwrapping to the context's
// cause. Outcomes are judged as by [UnaryServerConcurrency].
func UnaryClientConcurrency(c limit.ConcurrencyLimiter) grpc.UnaryClientInterceptor {
	if c == nil {
		panic("grpcx: UnaryClientConcurrency called with a nil ConcurrencyLimiter")
	}
	classify := concurrencyClassify(c)
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		p, err := c.Acquire(ctx)
		if err != nil {
			return reject(ctx, err, false)
		}
		returned := false
		defer func() {
			if !returned {
				p.Release(bulwark.Failure)
			}
		}()
		err = invoker(ctx, method, req, reply, cc, opts...)
		returned = true
		p.Release(classify(ctx, err))
		return err
	}
}

// StreamClientConcurrency returns an interceptor that opens each stream
// under a slot of c, held until the stream ends: when RecvMsg returns an
// error (io.EOF is a success, any other error is judged by [Classify] or
// an Adaptive's Classify), or when the stream's context is done (the
// caller cancelled it, or the RPC finished) — so an abandoned stream frees
// its slot once its context is cancelled, as grpc-go asks callers to do.
func StreamClientConcurrency(c limit.ConcurrencyLimiter) grpc.StreamClientInterceptor {
	if c == nil {
		panic("grpcx: StreamClientConcurrency called with a nil ConcurrencyLimiter")
	}
	classify := concurrencyClassify(c)
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
		streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		p, err := c.Acquire(ctx)
		if err != nil {
			return nil, reject(ctx, err, false)
		}
		returned := false
		defer func() {
			if !returned {
				p.Release(bulwark.Failure)
			}
		}()
		cs, err := streamer(ctx, desc, cc, method, opts...)
		returned = true
		if err != nil {
			p.Release(classify(ctx, err))
			return nil, err
		}
		s := &concurrencyStream{ClientStream: cs, p: p, ctx: ctx, classify: classify, unaryResponse: !desc.ServerStreams}
		s.stop = context.AfterFunc(cs.Context(), func() { s.release(bulwark.Neutral) })
		return s, nil
	}
}

type concurrencyStream struct {
	grpc.ClientStream
	p        limit.Permit
	ctx      context.Context
	classify bulwark.Classifier
	// unaryResponse: the stream ends with its one response message.
	unaryResponse bool
	stop          func() bool // stops the AfterFunc; set before the caller gets the stream
	once          sync.Once
}

func (s *concurrencyStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	switch {
	case err == io.EOF:
		s.release(bulwark.Success)
	case err != nil:
		s.release(s.classify(s.ctx, err))
	case s.unaryResponse:
		s.release(bulwark.Success)
	default:
		return nil
	}
	s.stop()
	return err
}

func (s *concurrencyStream) release(o bulwark.Outcome) {
	s.once.Do(func() { s.p.Release(o) })
}
