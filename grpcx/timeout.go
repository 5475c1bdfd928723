package grpcx

import (
	"context"
	"io"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/bulwark-go/bulwark/internal/bridge"
	"github.com/bulwark-go/bulwark/timeout"
)

// UnaryClientTimeout returns an interceptor that gives every call made
// without a deadline the limit of t (Config.Timeout); a call whose
// context has a deadline, shorter or longer, keeps it untouched. gRPC
// sends the deadline to the server in grpc-timeout. When t's limit runs
// out, the call fails with a [*timeout.TimeoutError] wrapping gRPC's
// error: status.Code(err) is still DeadlineExceeded, and errors.Is(err,
// timeout.ErrTimeout) tells it from a deadline of the caller's. The call
// runs in the caller's goroutine whatever Config.Abandon says: grpc-go
// honours the context. A nil t panics.
func UnaryClientTimeout(t *timeout.Timeout) grpc.UnaryClientInterceptor {
	if t == nil {
		panic("grpcx: UnaryClientTimeout called with a nil *timeout.Timeout")
	}
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Deadline(); ok {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		actx, cancel := bridge.TimeoutDerive(t, ctx)
		err := invoker(actx, method, req, reply, cc, opts...)
		err = bridge.TimeoutJudge(t, ctx, actx, err, nil)
		cancel()
		return err
	}
}

// StreamClientTimeout returns an interceptor that gives every stream
// opened without a deadline the limit of t, for the whole stream; a
// stream whose context has a deadline keeps it. The stream's errors
// (from RecvMsg, SendMsg, Header) once the limit has run out are
// [*timeout.TimeoutError]s wrapping gRPC's, as for
// [UnaryClientTimeout]. The limit's timer is released when the stream
// ends, or at the latest when the limit runs out. A nil t panics.
func StreamClientTimeout(t *timeout.Timeout) grpc.StreamClientInterceptor {
	if t == nil {
		panic("grpcx: StreamClientTimeout called with a nil *timeout.Timeout")
	}
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
		streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if _, ok := ctx.Deadline(); ok {
			return streamer(ctx, desc, cc, method, opts...)
		}
		actx, cancel := bridge.TimeoutDerive(t, ctx)
		opts = append(opts[:len(opts):len(opts)], grpc.OnFinish(func(error) { cancel() }))
		cs, err := streamer(actx, desc, cc, method, opts...)
		if err != nil {
			err = bridge.TimeoutJudge(t, ctx, actx, err, nil)
			cancel()
			return nil, err
		}
		return &timeoutClientStream{ClientStream: cs, t: t, ctx: ctx, actx: actx}, nil
	}
}

type timeoutClientStream struct {
	grpc.ClientStream
	t         *timeout.Timeout
	ctx, actx context.Context
	seen      atomic.Bool // the timeout is counted once per stream
}

func (s *timeoutClientStream) judge(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	return bridge.TimeoutJudge(s.t, s.ctx, s.actx, err, &s.seen)
}

func (s *timeoutClientStream) RecvMsg(m any) error { return s.judge(s.ClientStream.RecvMsg(m)) }
func (s *timeoutClientStream) SendMsg(m any) error { return s.judge(s.ClientStream.SendMsg(m)) }

func (s *timeoutClientStream) Header() (metadata.MD, error) {
	md, err := s.ClientStream.Header()
	return md, s.judge(err)
}

// UnaryServerTimeout returns an interceptor that enforces t's limit as a
// maximum: the handler's context ends at the smaller of the incoming
// deadline (the client's, from grpc-timeout) and t's limit. It runs the
// handler as [timeout.Call] does (but never with a reused context:
// Config.ReuseContexts does not apply to handlers), so with Config.Abandon the call returns
// at the deadline even when the handler ignores its context (the handler
// runs on, and its reply is discarded); otherwise the handler runs in the
// server's goroutine. When t's limit runs out, the client gets the
// handler's status if its error carries one (with Abandon, only if the
// handler returned it before the call gave up on the handler), else
// DeadlineExceeded (the *timeout.TimeoutError matches
// context.DeadlineExceeded, which grpc-go maps to it). A nil t panics.
func UnaryServerTimeout(t *timeout.Timeout) grpc.UnaryServerInterceptor {
	if t == nil {
		panic("grpcx: UnaryServerTimeout called with a nil *timeout.Timeout")
	}
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return bridge.TimeoutCall(t, ctx, func(ctx context.Context) (any, error) { return handler(ctx, req) })
	}
}

// StreamServerTimeout returns an interceptor that enforces t's limit as a
// maximum on each stream: the stream's Context ends at the smaller of the
// incoming deadline and t's limit. The handler runs in the server's
// goroutine whatever Config.Abandon says (a stream cannot be used once its
// handler has returned). Once the limit has run out, SendMsg and RecvMsg
// fail with a *timeout.TimeoutError without touching the stream, so a
// handler that checks their errors stops; a RecvMsg already blocked is
// not interrupted. The client then gets DeadlineExceeded (or the status
// the handler's error carries), even when the handler returns nil: a
// stream the limit cut short does not end OK. A nil t panics.
func StreamServerTimeout(t *timeout.Timeout) grpc.StreamServerInterceptor {
	if t == nil {
		panic("grpcx: StreamServerTimeout called with a nil *timeout.Timeout")
	}
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := ss.Context()
		actx, cancel := bridge.TimeoutDerive(t, ctx)
		if cancel == nil { // the client's deadline comes first
			return handler(srv, ss)
		}
		ts := &timeoutServerStream{ServerStream: ss, t: t, ctx: ctx, actx: actx}
		err := handler(srv, ts)
		if err == nil && actx.Err() != nil && ctx.Err() == nil {
			err = context.Cause(actx) // the limit cut the stream short: not OK
		}
		err = bridge.TimeoutJudge(t, ctx, actx, err, &ts.seen)
		cancel()
		return err
	}
}

type timeoutServerStream struct {
	grpc.ServerStream
	t         *timeout.Timeout
	ctx, actx context.Context
	seen      atomic.Bool
}

func (s *timeoutServerStream) Context() context.Context { return s.actx }

// expired returns the error of a stream whose time ran out, or nil.
func (s *timeoutServerStream) expired() error {
	if s.actx.Err() == nil {
		return nil
	}
	return bridge.TimeoutJudge(s.t, s.ctx, s.actx, context.Cause(s.actx), &s.seen)
}

func (s *timeoutServerStream) SendMsg(m any) error {
	if err := s.expired(); err != nil {
		return err
	}
	return s.ServerStream.SendMsg(m)
}

func (s *timeoutServerStream) RecvMsg(m any) error {
	if err := s.expired(); err != nil {
		return err
	}
	return s.ServerStream.RecvMsg(m)
}
