package grpcx

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/bridge"
	"github.com/bulwark-go/bulwark/internal/pushback"
	"github.com/bulwark-go/bulwark/internal/tried"
	"github.com/bulwark-go/bulwark/retry"
)

// Metadata of gRPC's retry design (gRFC A6).
const (
	// previousAttemptsKey is sent on every retry or hedge with the number
	// of attempts made before it.
	previousAttemptsKey = "grpc-previous-rpc-attempts"
	// pushbackKey is the trailer in which a server asks for a delay (in
	// milliseconds) before the next attempt, or, if negative or
	// malformed, asks the client not to retry.
	pushbackKey = "grpc-retry-pushback-ms"
)

// retryJudge prepares an attempt's error for the policy: it attaches the
// server's pushback from the trailer, and, when the policy has no
// Classify of its own, marks errors that gRPC's rules do not count as
// failures (see [Classify]) as permanent. The caller gets its status error
// back unmarked.
func retryJudge(ctx context.Context, cls bulwark.Classifier, err error, trailer metadata.MD) error {
	if v := trailer.Get(pushbackKey); len(v) > 0 {
		d, ok := pushback.GRPC(v[0])
		if !ok {
			d = -1 // the server asked not to retry
		}
		err = retry.Pushback(err, d)
	}
	if cls == nil && Classify(ctx, err) != bulwark.Failure {
		return retry.Permanent(err)
	}
	return err
}

func retryAttemptContext(ctx context.Context, n int) context.Context {
	if n <= 1 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, previousAttemptsKey, strconv.Itoa(n-1))
}

// newReply returns a fresh, empty message of reply's type.
func newReply(reply any) any {
	if m, ok := reply.(proto.Message); ok {
		return m.ProtoReflect().New().Interface()
	}
	return reflect.New(reflect.TypeOf(reply).Elem()).Interface()
}

// copyReply makes dst a copy of src (both of the same type).
func copyReply(dst, src any) {
	if d, ok := dst.(proto.Message); ok {
		proto.Reset(d)
		proto.Merge(d, src.(proto.Message))
		return
	}
	reflect.ValueOf(dst).Elem().Set(reflect.ValueOf(src).Elem())
}

// retryWriteBacks are the caller's call options that write results back
// (grpc.Header, grpc.Trailer, grpc.Peer, grpc.OnFinish). They are never
// given to an attempt, which might lose a hedge race or be retried: each
// attempt captures its own header, trailer and peer, and only the
// attempt whose result the caller gets has them copied back, once, after
// every attempt has returned; OnFinish runs once, with the error the
// caller gets.
type retryWriteBacks struct {
	headers, trailers []*metadata.MD
	peers             []*peer.Peer
	onFinish          []func(error)
}

// splitCallOptions returns opts without the write-back options, and those
// (nil when there are none; opts is then returned as it is).
func splitCallOptions(opts []grpc.CallOption) ([]grpc.CallOption, *retryWriteBacks) {
	n := 0
	for _, o := range opts {
		switch o.(type) {
		case grpc.HeaderCallOption, grpc.TrailerCallOption, grpc.PeerCallOption, grpc.OnFinishCallOption:
			n++
		}
	}
	if n == 0 {
		return opts, nil
	}
	wb := &retryWriteBacks{}
	kept := make([]grpc.CallOption, 0, len(opts)-n)
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			wb.headers = append(wb.headers, o.HeaderAddr)
		case grpc.TrailerCallOption:
			wb.trailers = append(wb.trailers, o.TrailerAddr)
		case grpc.PeerCallOption:
			wb.peers = append(wb.peers, o.PeerAddr)
		case grpc.OnFinishCallOption:
			wb.onFinish = append(wb.onFinish, o.OnFinish)
		default:
			kept = append(kept, o)
		}
	}
	return kept, wb
}

// retryAttempt is what one unary attempt produced.
type retryAttempt struct {
	reply           any
	header, trailer metadata.MD
	peer            peer.Peer
}

// deliver copies a's header, trailer and peer (a may be nil: the call was
// cancelled before any attempt ended) to the caller's options and runs
// its OnFinish callbacks with err.
func (wb *retryWriteBacks) deliver(a *retryAttempt, err error) {
	if a != nil {
		for _, h := range wb.headers {
			*h = a.header
		}
		for _, t := range wb.trailers {
			*t = a.trailer
		}
		if a.peer.Addr != nil {
			for _, p := range wb.peers {
				*p = a.peer
			}
		}
	}
	for _, f := range wb.onFinish {
		f(err)
	}
}

// UnaryClientRetry returns a unary client interceptor that retries (and,
// if the policy says so, hedges) calls per p.
//
// Errors are judged by p's Config.Classify, or, when it is nil, by gRPC's
// rules ([Classify]): only Unavailable, DeadlineExceeded,
// ResourceExhausted, Aborted, Internal and Unknown are retried. A
// grpc-retry-pushback-ms trailer sets the next delay (capped by
// Config.MaxPushback); a negative or malformed one stops the retries, as
// in gRFC A6. Every retry and hedge carries grpc-previous-rpc-attempts,
// and adds a bulwark.retry.attempt event to the span in the call's
// context, as over HTTP. The error returned is the last status error, or
// a *retry.ExhaustedError wrapping it, whose status.Code is still that of
// the last attempt. An attempt rejected locally, without being sent (by
// [UnaryClientBreaker] below, an open breaker), ends the call at once
// with a *retry.ExhaustedError of Reason retry.ReasonRejected:
// errors.Is(err, breaker.ErrOpen) holds and status.Code is Unavailable
// (unless retry.Config.WaitRejected).
//
// Call options that write back (grpc.Header, grpc.Trailer, grpc.Peer,
// grpc.OnFinish) see only the attempt whose result the caller gets (the
// winner, or the last attempt when the call fails): they are filled once,
// after every attempt has returned, and OnFinish runs once, with the error
// the caller gets. With hedging, every attempt also decodes into a fresh
// reply of its own and only the winner's is copied into the caller's
// reply, so concurrent attempts never write the same message. Only hedge
// idempotent methods.
func UnaryClientRetry(p *retry.Policy) grpc.UnaryClientInterceptor {
	cls := bridge.RetryClassifier(p)
	hedging := bridge.RetryHedging(p)
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		opts, wb := splitCallOptions(opts)
		wantHeader := wb != nil && len(wb.headers) > 0
		wantPeer := wb != nil && len(wb.peers) > 0
		if tried.From(ctx) == nil {
			// A record of the endpoints the call's attempts go to, so
			// that grpcx/balancer sends a retry elsewhere: the picker
			// cannot hand one back with a failed attempt's status, as
			// lb's RoundTripper does with its error.
			ctx = tried.With(ctx, new(tried.Record))
		}
		a, err := retry.Call(ctx, p, func(actx context.Context) (*retryAttempt, error) {
			a := &retryAttempt{reply: reply}
			if hedging {
				a.reply = newReply(reply)
			}
			callOpts := append(opts[:len(opts):len(opts)], grpc.Trailer(&a.trailer))
			if wantHeader {
				callOpts = append(callOpts, grpc.Header(&a.header))
			}
			if wantPeer {
				callOpts = append(callOpts, grpc.Peer(&a.peer))
			}
			err := invoker(retryAttemptContext(actx, retry.Attempt(actx)), method, req, a.reply, cc, callOpts...)
			if err != nil {
				return a, retryJudge(actx, cls, err, a.trailer)
			}
			return a, nil
		})
		if err == nil && hedging {
			copyReply(reply, a.reply)
		}
		if wb != nil {
			wb.deliver(a, err)
		}
		return err
	}
}

// retryStreamMaxBuffered bounds the messages a stream keeps to replay on a
// retry; a stream that sends more is committed (no longer retried).
const retryStreamMaxBuffered = 64

// StreamClientRetry returns a stream client interceptor that retries a
// stream per p, but only until the stream is committed, as in gRPC's retry
// design (gRFC A6): once the server has sent response headers, or the
// client has received a message (or the stream has ended cleanly), a
// failure reaches the caller unretried. Until then, nothing from the
// server has reached the application, so the stream can be re-created
// transparently. A stream the server fails before its first message but
// after sending headers is therefore not retried: the application may
// have read those headers. The
// messages sent so far (up to 64; beyond that the stream is no longer
// retried) are kept and replayed, in order, on the new stream, and a
// CloseSend is repeated. Under grpcx/balancer, a retry is opened on an
// endpoint none of the stream's attempts went to, while one is left, as
// for [UnaryClientRetry]. Streams are never hedged. Judgement of errors and
// pushback is as in [UnaryClientRetry]. A grpc.OnFinish option runs once,
// with the error that ends the stream for the caller (nil for a clean
// end), when the interceptor sees that end (a failed creation, or RecvMsg
// returning an error); the other call options apply to every attempt.
//
// Each phase that fails (creating the stream, the first receive) runs
// through the policy once, so such a stream counts as one or two calls
// for the budget.
func StreamClientRetry(p *retry.Policy) grpc.StreamClientInterceptor {
	cls := bridge.RetryClassifier(p)
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
		streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if tried.From(ctx) == nil {
			// The record of the stream's endpoints, as UnaryClientRetry
			// keeps for a call: grpcx/balancer opens a retried stream
			// on an endpoint none of its attempts went to.
			ctx = tried.With(ctx, new(tried.Record))
		}
		s := &retryStream{ctx: ctx, p: p, cls: cls, desc: desc, cc: cc, method: method, streamer: streamer}
		s.opts, s.onFinish = splitOnFinish(opts)
		if err := s.open(ctx); err != nil {
			if err = s.retry(err, nil); err != nil {
				s.finish(err)
				return nil, err
			}
		}
		return s, nil
	}
}

type retryStream struct {
	ctx      context.Context
	p        *retry.Policy
	cls      bulwark.Classifier
	desc     *grpc.StreamDesc
	cc       *grpc.ClientConn
	method   string
	streamer grpc.Streamer
	opts     []grpc.CallOption
	onFinish []func(error)
	finished sync.Once

	committed atomic.Bool // once set, cs never changes and nothing is buffered
	mu        sync.Mutex  // guards the fields below until committed
	cs        grpc.ClientStream
	attempts  int
	sent      []any
	closed    bool
}

// open creates a new underlying stream and replays what was sent.
func (s *retryStream) open(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts++
	cs, err := s.streamer(retryAttemptContext(ctx, s.attempts), s.desc, s.cc, s.method, s.opts...)
	if err != nil {
		return retryJudge(ctx, s.cls, err, nil)
	}
	s.cs = cs
	for _, m := range s.sent {
		if err := cs.SendMsg(m); err != nil {
			break // the stream failed; RecvMsg reports its status
		}
	}
	if s.closed {
		_ = cs.CloseSend()
	}
	return nil
}

// retry runs the policy over a phase whose first attempt failed with
// first; recv, if set, is the receive to repeat on each new stream.
func (s *retryStream) retry(first error, recv func(grpc.ClientStream) error) error {
	initial := true
	return s.p.Do(retry.WithoutHedging(s.ctx), func(ctx context.Context) error {
		if initial {
			initial = false
			return first
		}
		if err := s.open(s.ctx); err != nil {
			return err
		}
		if recv == nil {
			return nil
		}
		return recv(s.current())
	})
}

func (s *retryStream) current() grpc.ClientStream {
	if s.committed.Load() {
		return s.cs
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cs
}

func (s *retryStream) commit() {
	s.mu.Lock()
	s.sent = nil
	s.committed.Store(true)
	s.mu.Unlock()
}

func (s *retryStream) Header() (metadata.MD, error) { return s.current().Header() }
func (s *retryStream) Trailer() metadata.MD         { return s.current().Trailer() }
func (s *retryStream) Context() context.Context     { return s.current().Context() }

func (s *retryStream) CloseSend() error {
	if s.committed.Load() {
		return s.cs.CloseSend()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.cs.CloseSend()
}

func (s *retryStream) SendMsg(m any) error {
	if s.committed.Load() {
		return s.cs.SendMsg(m)
	}
	s.mu.Lock()
	if len(s.sent) < retryStreamMaxBuffered {
		s.sent = append(s.sent, m)
	} else {
		s.sent = nil
		s.committed.Store(true)
	}
	cs := s.cs
	s.mu.Unlock()
	return cs.SendMsg(m)
}

func (s *retryStream) RecvMsg(m any) error {
	if s.committed.Load() {
		err := s.cs.RecvMsg(m)
		if err != nil || !s.desc.ServerStreams {
			s.finish(err)
		}
		return err
	}
	// recv ends the retry phase with a message (nil) or a clean end of
	// stream (io.EOF), passed through the policy as a permanent
	// retryRecvDone; any other error is judged for a retry.
	recv := func(cs grpc.ClientStream) error {
		err := cs.RecvMsg(m)
		if err == nil || err == io.EOF {
			return retry.Permanent(&retryRecvDone{err})
		}
		// After a failed RecvMsg, Header returns at once: non-nil when
		// the server had sent headers, which commits the stream.
		if md, _ := cs.Header(); md != nil {
			return retry.Permanent(err)
		}
		return retryJudge(s.ctx, s.cls, err, cs.Trailer())
	}
	err := recv(s.current())
	var done *retryRecvDone
	if !errors.As(err, &done) {
		err = s.retry(err, recv)
	}
	s.commit()
	if errors.As(err, &done) {
		err = done.err
	}
	if err != nil || !s.desc.ServerStreams {
		s.finish(err)
	}
	return err
}

// finish runs the caller's OnFinish callbacks once, with err (nil for a
// clean end).
func (s *retryStream) finish(err error) {
	if len(s.onFinish) == 0 {
		return
	}
	if err == io.EOF {
		err = nil
	}
	s.finished.Do(func() {
		for _, f := range s.onFinish {
			f(err)
		}
	})
}

// splitOnFinish returns opts without grpc.OnFinish options, and their
// callbacks.
func splitOnFinish(opts []grpc.CallOption) ([]grpc.CallOption, []func(error)) {
	var fs []func(error)
	kept := opts
	for i, o := range opts {
		if f, ok := o.(grpc.OnFinishCallOption); ok {
			if fs == nil {
				kept = append([]grpc.CallOption(nil), opts[:i]...)
			}
			fs = append(fs, f.OnFinish)
		} else if fs != nil {
			kept = append(kept, o)
		}
	}
	return kept, fs
}

// retryRecvDone marks a receive that ends a stream's retry phase.
type retryRecvDone struct{ err error }

func (*retryRecvDone) Error() string { return "grpcx: first message received" }
