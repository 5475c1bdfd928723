package grpcx

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/bulwark-go/bulwark/chaos"
	"github.com/bulwark-go/bulwark/internal/bridge"
	"github.com/bulwark-go/bulwark/internal/clock"
)

// ChaosError is the error of a call that a chaos fault failed. Its
// GRPCStatus carries the fault's code (Fault.GRPCCode for an Error,
// codes.Unavailable for Abort and Drop), and it unwraps to the
// [*chaos.FaultError], so errors.Is(err, chaos.ErrInjected) holds on the
// side that injected it. A client of a server-side fault sees only the
// status.
type ChaosError struct {
	// Err is the fault.
	Err *chaos.FaultError
	// Code is the status code the call fails with.
	Code codes.Code
}

// Error returns the fault's message.
func (e *ChaosError) Error() string { return e.Err.Error() }

// Unwrap returns the fault.
func (e *ChaosError) Unwrap() error { return e.Err }

// GRPCStatus returns Code with the fault's message.
func (e *ChaosError) GRPCStatus() *status.Status { return status.New(e.Code, e.Err.Error()) }

// chaosPlan picks the fault for a call and waits its latency. It returns
// ok false when no fault hits the call, and a non-nil err when ctx ended
// during the latency.
func chaosPlan(ctx context.Context, inj *chaos.Injector, method string, md metadata.MD) (act chaos.Action, fe *ChaosError, ok bool, err error) {
	var drill string
	if v := md.Get(bridge.ChaosHeader(inj)); len(v) > 0 {
		drill = v[0]
	}
	d, a, name, code, ok := bridge.ChaosPick(inj, method, drill)
	if !ok {
		return 0, nil, false, nil
	}
	if err := clock.Sleep(ctx, clock.Real, d); err != nil {
		return 0, nil, true, status.FromContextError(err).Err()
	}
	act = chaos.Action(a)
	c := codes.Unavailable
	if act == chaos.Error {
		c = codes.Code(code)
	}
	return act, &ChaosError{Err: &chaos.FaultError{Fault: name, Action: act}, Code: c}, true, nil
}

// chaosEnabled is the one atomic load a disabled injector costs.
func chaosEnabled(inj *chaos.Injector) bool { return inj.Enabled() }

// UnaryServerChaos returns an interceptor that injects inj's faults into
// the calls a server handles. Faults are targeted by the full method name
// ("/pkg.Service/Method", matched against Fault.PathPrefix; faults with
// Methods set never hit gRPC calls) and by the drill metadata (the drill
// header's name in lower case, "bulwark-chaos" by default). A hit call
// first waits the fault's latency (returning the context's status if the
// call ends first), then: None runs the handler; Error returns
// Fault.GRPCCode without running it; Abort returns codes.Unavailable
// without running it; Drop runs the handler, discards its response and
// returns codes.Unavailable.
func UnaryServerChaos(inj *chaos.Injector) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !chaosEnabled(inj) {
			return handler(ctx, req)
		}
		md, _ := metadata.FromIncomingContext(ctx)
		act, fe, ok, err := chaosPlan(ctx, inj, info.FullMethod, md)
		switch {
		case !ok:
			return handler(ctx, req)
		case err != nil:
			return nil, err
		case act == chaos.Error || act == chaos.Abort:
			return nil, fe
		case act == chaos.Drop:
			_, _ = handler(ctx, req)
			return nil, fe
		}
		return handler(ctx, req)
	}
}

// StreamServerChaos is [UnaryServerChaos] for streams. A Drop runs the
// handler with a stream whose SendMsg discards every message, then
// returns codes.Unavailable.
func StreamServerChaos(inj *chaos.Injector) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !chaosEnabled(inj) {
			return handler(srv, ss)
		}
		md, _ := metadata.FromIncomingContext(ss.Context())
		act, fe, ok, err := chaosPlan(ss.Context(), inj, info.FullMethod, md)
		switch {
		case !ok:
			return handler(srv, ss)
		case err != nil:
			return err
		case act == chaos.Error || act == chaos.Abort:
			return fe
		case act == chaos.Drop:
			_ = handler(srv, droppingStream{ss})
			return fe
		}
		return handler(srv, ss)
	}
}

type droppingStream struct{ grpc.ServerStream }

func (droppingStream) SendMsg(any) error            { return nil }
func (droppingStream) SendHeader(metadata.MD) error { return nil }
func (droppingStream) SetHeader(metadata.MD) error  { return nil }
func (droppingStream) SetTrailer(metadata.MD)       {}

// UnaryClientChaos returns an interceptor that injects inj's faults into
// the calls a client makes, targeted as for [UnaryServerChaos] (the drill
// metadata is read from the outgoing context). Error returns a
// [*ChaosError] with Fault.GRPCCode and Abort one with codes.Unavailable,
// neither sending the call; Drop sends the call, discards its result and
// returns a *ChaosError with codes.Unavailable.
func UnaryClientChaos(inj *chaos.Injector) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
		invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if !chaosEnabled(inj) {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		md, _ := metadata.FromOutgoingContext(ctx)
		act, fe, ok, err := chaosPlan(ctx, inj, method, md)
		switch {
		case !ok:
			return invoker(ctx, method, req, reply, cc, opts...)
		case err != nil:
			return err
		case act == chaos.Error || act == chaos.Abort:
			return fe
		case act == chaos.Drop:
			_ = invoker(ctx, method, req, reply, cc, opts...)
			return fe
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// StreamClientChaos is [UnaryClientChaos] for streams. Error and Abort
// fail the stream's creation; a Drop creates the stream, and every
// RecvMsg returns the fault's *ChaosError (codes.Unavailable) in place
// of the server's messages.
func StreamClientChaos(inj *chaos.Injector) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
		streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if !chaosEnabled(inj) {
			return streamer(ctx, desc, cc, method, opts...)
		}
		md, _ := metadata.FromOutgoingContext(ctx)
		act, fe, ok, err := chaosPlan(ctx, inj, method, md)
		switch {
		case !ok:
			return streamer(ctx, desc, cc, method, opts...)
		case err != nil:
			return nil, err
		case act == chaos.Error || act == chaos.Abort:
			return nil, fe
		case act == chaos.Drop:
			cs, err := streamer(ctx, desc, cc, method, opts...)
			if err != nil {
				return nil, err
			}
			return &droppedClientStream{ClientStream: cs, err: fe}, nil
		}
		return streamer(ctx, desc, cc, method, opts...)
	}
}

type droppedClientStream struct {
	grpc.ClientStream
	err error
}

// RecvMsg lets the server's answer arrive (so the server finishes its
// work), then loses it.
func (s *droppedClientStream) RecvMsg(m any) error {
	_ = s.ClientStream.RecvMsg(m)
	return s.err
}
