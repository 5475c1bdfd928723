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
	"github.com/bulwark-go/bulwark/degrade"
	"github.com/bulwark-go/bulwark/internal/bridge"
)

// DegradeError is the error of a call a shedder or a throttler rejected.
// Its GRPCStatus is codes.Unavailable for a shed call (the server is
// overloaded; another replica may not be) and codes.ResourceExhausted for
// a throttled one, and it unwraps to the degrade error, so
// errors.Is(err, degrade.ErrShed) or degrade.ErrThrottled holds where it
// was made.
type DegradeError struct {
	// Err is a *degrade.ShedError or a *degrade.ThrottleError.
	Err error
}

// Error returns the rejection's message.
func (e *DegradeError) Error() string { return e.Err.Error() }

// Unwrap returns the rejection.
func (e *DegradeError) Unwrap() error { return e.Err }

// GRPCStatus returns Unavailable for a shed call, ResourceExhausted for
// a throttled one.
func (e *DegradeError) GRPCStatus() *status.Status {
	if errors.Is(e.Err, degrade.ErrThrottled) {
		return status.New(codes.ResourceExhausted, e.Err.Error())
	}
	return status.New(codes.Unavailable, e.Err.Error())
}

// shedAllow ranks and admits a call; it returns the rejection as a status
// error after setting the pushback trailer.
func shedAllow(ctx context.Context, s *degrade.Shedder, method string) (degrade.ShedTicket, error) {
	var hdr string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(bridge.DegradeHeader(s)); len(v) > 0 {
			hdr = v[0]
		}
	}
	c := bridge.DegradeCriticality(s, method, hdr)
	t, err := s.Allow(degrade.Criticality(c))
	if err != nil {
		bridge.DegradeOnShed(s, ctx, c, err)
		var se *degrade.ShedError
		errors.As(err, &se)
		return t, shedRejection(ctx, se)
	}
	return t, nil
}

// shedRejection sets grpc-retry-pushback-ms from the shedder's wait and
// returns the call's error.
func shedRejection(ctx context.Context, se *degrade.ShedError) error {
	if se.Wait > 0 {
		ms := int64((se.Wait + time.Millisecond - 1) / time.Millisecond)
		_ = grpc.SetTrailer(ctx, metadata.Pairs(pushbackKey, strconv.FormatInt(ms, 10)))
	}
	return &DegradeError{Err: se}
}

// UnaryServerShed returns an interceptor that sheds load with s: each
// call is ranked by the shedder's Routes (matched against the full
// method name "/pkg.Service/Method"), else by the criticality metadata
// (ShedderConfig.Header in lower case, "bulwark-criticality", with the
// values "critical", "default" or "sheddable") unless the shedder ignores
// it, else Default. A rejected call returns a [*DegradeError]
// (codes.Unavailable) with the trailer grpc-retry-pushback-ms set to the
// shedder's wait, which bulwark's retry (and gRPC's own retry, gRFC A6)
// honours; the handler does not run. ShedderConfig.Criticality (an HTTP
// function) is not used for gRPC.
func UnaryServerShed(s *degrade.Shedder) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		t, err := shedAllow(ctx, s, info.FullMethod)
		if err != nil {
			return nil, err
		}
		defer s.Done(t)
		return handler(ctx, req)
	}
}

// StreamServerShed is [UnaryServerShed] for streams: a stream counts as
// in flight until its handler returns.
func StreamServerShed(s *degrade.Shedder) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		t, err := shedAllow(ss.Context(), s, info.FullMethod)
		if err != nil {
			return err
		}
		defer s.Done(t)
		return handler(srv, ss)
	}
}

// throttleClassify returns the throttler's Classify, or [Classify].
func throttleClassify(t *degrade.Throttler) bulwark.Classifier {
	if c := bridge.DegradeThrottleClassify(t); c != nil {
		return c
	}
	return Classify
}

// UnaryClientThrottle returns an interceptor that throttles calls with t
// (the Google SRE client-side throttling; see [degrade.Throttler]): a call
// the throttler rejects is not sent and returns a [*DegradeError]
// (codes.ResourceExhausted); every call sent is recorded as accepted
// unless [Classify] (or ThrottlerConfig.Classify) calls its outcome a
// failure. A panicking invoker is recorded as a failure and the panic
// goes on.
func UnaryClientThrottle(t *degrade.Throttler) grpc.UnaryClientInterceptor {
	classify := throttleClassify(t)
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if err := t.Allow(); err != nil {
			return &DegradeError{Err: err}
		}
		finished := false
		defer func() {
			if !finished {
				t.Done(bulwark.Failure)
			}
		}()
		err := invoker(ctx, method, req, reply, cc, opts...)
		finished = true
		t.Done(classify(ctx, err))
		return err
	}
}

// StreamClientThrottle is [UnaryClientThrottle] for streams. A stream is
// judged when it ends: RecvMsg returning io.EOF is an accept, another
// error is classified; for a stream without server streaming, the first
// RecvMsg returning nil is the final response and an accept. A stream
// abandoned before it ends is not counted.
func StreamClientThrottle(t *degrade.Throttler) grpc.StreamClientInterceptor {
	classify := throttleClassify(t)
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
		streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if err := t.Allow(); err != nil {
			return nil, &DegradeError{Err: err}
		}
		finished := false
		defer func() {
			if !finished {
				t.Done(bulwark.Failure)
			}
		}()
		cs, err := streamer(ctx, desc, cc, method, opts...)
		finished = true
		if err != nil {
			t.Done(classify(ctx, err))
			return nil, err
		}
		return &throttleStream{ClientStream: cs, t: t, ctx: ctx, classify: classify, unary: !desc.ServerStreams}, nil
	}
}

// throttleStream records a stream's outcome once, when RecvMsg ends it.
type throttleStream struct {
	grpc.ClientStream
	t        *degrade.Throttler
	ctx      context.Context
	classify bulwark.Classifier
	unary    bool
	once     sync.Once
}

func (s *throttleStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	switch {
	case err == io.EOF:
		s.once.Do(func() { s.t.Done(bulwark.Success) })
	case err != nil:
		s.once.Do(func() { s.t.Done(s.classify(s.ctx, err)) })
	case s.unary:
		s.once.Do(func() { s.t.Done(bulwark.Success) })
	}
	return err
}
