package grpcx

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/bulwark-go/bulwark/idempotency"
	"github.com/bulwark-go/bulwark/internal/bridge"
)

// IdempotencyKeyMetadata is the metadata entry carrying a gRPC call's
// idempotency key.
const IdempotencyKeyMetadata = "idempotency-key"

// IdempotencyOption configures [UnaryServerIdempotency].
type IdempotencyOption interface{ applyIdempotency(*idemOptions) }

type idemOptions struct {
	scope func(ctx context.Context) string
}

type idemOptionFunc func(*idemOptions)

func (f idemOptionFunc) applyIdempotency(o *idemOptions) { f(o) }

// WithIdempotencyScope sets how the caller's identity is found; records
// of different scopes never mix. Default: the "authorization" metadata
// entry; calls without one share an anonymous scope.
func WithIdempotencyScope(scope func(ctx context.Context) string) IdempotencyOption {
	return idemOptionFunc(func(o *idemOptions) { o.scope = scope })
}

// UnaryServerIdempotency gives unary methods the semantics of
// [idempotency.Keeper.Handler], keyed by the "idempotency-key" metadata
// entry (parsed by idempotency.ParseKey). Calls without the entry pass
// through untouched.
//
//   - The first call with a key runs the handler; its reply (or its error
//     status, unless the code is one bulwark counts as a server failure:
//     Unavailable, DeadlineExceeded, ResourceExhausted, Aborted, Internal,
//     Unknown) is stored and replayed to later calls with the same key and
//     request, with the response header "idempotent-replayed: true".
//   - The same key with a different request (method or message): codes.InvalidArgument.
//   - The same key still in progress: codes.Aborted, with a
//     grpc-retry-pushback-ms trailer, which bulwark's retry honours.
//   - A malformed key: codes.InvalidArgument.
//   - The store unreachable: codes.Unavailable with a pushback of one
//     second; the handler does not run.
//
// Replies are stored as google.protobuf.Any, so their types must be
// registered in the global protobuf registry (generated code does that).
func UnaryServerIdempotency(k *idempotency.Keeper, opts ...IdempotencyOption) grpc.UnaryServerInterceptor {
	o := idemOptions{scope: authorizationScope}
	for _, opt := range opts {
		opt.applyIdempotency(&o)
	}
	maxKey := bridge.IdempotencyMaxKeyLength(k)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		values := md.Get(IdempotencyKeyMetadata)
		if len(values) == 0 {
			return handler(ctx, req)
		}
		if len(values) > 1 {
			return nil, status.Error(codes.InvalidArgument, "idempotency: more than one idempotency-key entry")
		}
		key, err := idempotency.ParseKey(values[0], maxKey)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		fp, err := fingerprint(info.FullMethod, req)
		if err != nil {
			return nil, status.Error(codes.Internal, "idempotency: cannot fingerprint the request: "+err.Error())
		}
		var reply any
		rec, replayed, err := k.Do(ctx, idempotency.Request{Scope: o.scope(ctx), Key: key, Fingerprint: fp},
			func(ctx context.Context) (*idempotency.Record, error) {
				var herr error
				reply, herr = handler(ctx, req)
				return recordOf(reply, herr)
			})
		switch {
		case err != nil:
			return nil, idempotencyStatus(ctx, err)
		case replayed:
			grpc.SetHeader(ctx, metadata.Pairs("idempotent-replayed", "true"))
			return replyOf(rec)
		case rec != nil && rec.Status != int(codes.OK):
			return replyOf(rec) // the handler's own error, stored
		}
		return reply, nil
	}
}

func authorizationScope(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("authorization"); len(v) > 0 {
		return v[0]
	}
	return ""
}

func fingerprint(method string, req any) (string, error) {
	h := sha256.New()
	h.Write([]byte(method))
	h.Write([]byte{0})
	if m, ok := req.(proto.Message); ok {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// recordOf turns a handler's result into what is stored: nil (not stored,
// the key released) for a failure code or a reply that is not a protobuf
// message.
func recordOf(reply any, err error) (*idempotency.Record, error) {
	if err != nil {
		st := status.Convert(err)
		if failureCode(st.Code()) {
			return nil, err
		}
		b, merr := proto.Marshal(st.Proto())
		if merr != nil {
			return nil, err
		}
		return &idempotency.Record{Status: int(st.Code()), Body: b}, nil
	}
	m, ok := reply.(proto.Message)
	if !ok {
		return nil, nil
	}
	a, err := anypb.New(m)
	if err != nil {
		return nil, nil
	}
	b, err := proto.Marshal(a)
	if err != nil {
		return nil, nil
	}
	return &idempotency.Record{Status: int(codes.OK), Body: b}, nil
}

func replyOf(rec *idempotency.Record) (any, error) {
	if rec.Status != int(codes.OK) {
		var st spb.Status
		if err := proto.Unmarshal(rec.Body, &st); err != nil {
			return nil, status.Error(codes.Internal, "idempotency: corrupt stored status")
		}
		return nil, status.ErrorProto(&st)
	}
	var a anypb.Any
	if err := proto.Unmarshal(rec.Body, &a); err != nil {
		return nil, status.Error(codes.Internal, "idempotency: corrupt stored reply")
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		return nil, status.Error(codes.Internal, "idempotency: stored reply of an unknown type: "+err.Error())
	}
	return m, nil
}

func failureCode(c codes.Code) bool {
	switch c {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted, codes.Internal, codes.Unknown:
		return true
	}
	return false
}

func idempotencyStatus(ctx context.Context, err error) error {
	var ip *idempotency.InProgressError
	switch {
	case errors.As(err, &ip):
		setPushback(ctx, ip.Wait)
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, idempotency.ErrMismatch):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, idempotency.ErrStoreUnavailable):
		setPushback(ctx, time.Second)
		return status.Error(codes.Unavailable, err.Error())
	}
	if s, ok := status.FromError(err); ok {
		return s.Err()
	}
	return status.FromContextError(err).Err()
}

func setPushback(ctx context.Context, d time.Duration) {
	grpc.SetTrailer(ctx, metadata.Pairs(pushbackKey, strconv.FormatInt(d.Milliseconds(), 10)))
}
