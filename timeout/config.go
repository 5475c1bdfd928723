package timeout

import (
	"net/http"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark/internal/httpx"
	"github.com/bulwark-go/bulwark/internal/validate"
)

// Defaults, see [Config].
const (
	// DefaultTimeout is the default of Config.Timeout.
	DefaultTimeout = 10 * time.Second
	// MaxTimeout bounds Config.Timeout, and the budgets Handler reads
	// (a larger one is read as MaxTimeout).
	MaxTimeout = 24 * time.Hour
	// DefaultHeader is the default of Config.Header.
	DefaultHeader = "Request-Timeout-Ms"
	// NoHeader, as Config.Header, turns deadline propagation off.
	NoHeader = "-"
	// MaxHeaderLen bounds the length of Config.Header.
	MaxHeaderLen = 128
)

// Config configures a [Timeout]. The zero Config is useful: a 10 s limit,
// cooperative (fn runs in the caller's goroutine with a context that ends
// at the deadline), and the time budget propagated in the
// Request-Timeout-Ms header. [New] copies the Config; changing it
// afterwards has no effect.
type Config struct {
	// Name names the Timeout in telemetry (the bulwark.name attribute).
	// Default "".
	Name string

	// Timeout is the time limit of each call (Do, Call), each attempt
	// (RoundTripper) and each request (Handler). Default 10 s
	// ([DefaultTimeout]): a safety net against calls that hang, shorter
	// than Polly's 30 s and close to Envoy's 15 s route timeout; set it
	// from the latency the caller can afford. A negative value, or one
	// past [MaxTimeout] (24 h), is an error.
	Timeout time.Duration

	// Abandon makes Do and Call return at the deadline even when fn
	// ignores its context: fn runs in a goroutine of its own, and at the
	// deadline (or when the caller's context ends) the call returns
	// without waiting for it. The abandoned fn runs on until it returns;
	// its result is discarded; a panic in it after abandonment crashes
	// the program, as a panic in any goroutine does (see the package
	// doc). It costs a goroutine and a few allocations per call.
	//
	// Default false, cooperative: fn runs in the caller's goroutine with a
	// context that ends at the deadline, and Do returns when fn does,
	// which for a function that honours its context is at the deadline.
	// It costs no goroutine.
	//
	// Abandon applies to Do, Call, Handler (which then returns, and lets
	// the server end the response, at the deadline: see
	// [Timeout.Handler]) and grpcx's unary server interceptor.
	// RoundTripper and the other gRPC interceptors always work through the
	// context, which net/http and grpc-go honour.
	Abandon bool

	// ReuseContexts makes Do and Call reuse the context they give fn from
	// one call to the next (from a sync.Pool), so that in the cooperative
	// mode they allocate nothing: 0 allocations per call when fn does not
	// watch ctx (call ctx.Done, derive a context from it, or register
	// with context.AfterFunc; checking ctx.Err, ctx.Deadline or ctx.Value
	// is not watching), whatever the caller's context. A context that was
	// watched is never reused (whatever waits on Done may read it after
	// the call, context's own child contexts do): it stays cancelled, with
	// its deadline and Values, as the default's do. So a call whose fn
	// watches costs what a fresh lazy context costs: 4 allocations, 6
	// under a caller's context that can be cancelled. See the package doc
	// for the default's figures.
	//
	// The contract, which the caller must keep: fn must not use ctx, nor
	// let anything use it, once fn has returned. Do ends ctx when fn
	// returns (what fn derived from it ends too, and functions registered
	// with context.AfterFunc run), and a later call may then get the same
	// context, with its own deadline, cause and Values: code that kept
	// ctx (a logger that reads a request ID from it later, a goroutine
	// polling ctx.Err, work detached with context.WithoutCancel(ctx))
	// would see another call's state and another request's Values.
	// A released context that nothing watched reads, until it is reused,
	// as cancelled (Err is context.Canceled, Done is closed), with no
	// deadline and no Values, so a late use most often fails visibly;
	// reads are never torn, only wrong. Use it only for functions whose code you control (not for a
	// handler that may start work in the background) and whose
	// allocation cost you have measured.
	//
	// One more difference, under a caller's context that can be
	// cancelled: when fn neither watched ctx nor checked ctx.Err between
	// the deadline and the caller's cancellation (both came while it did
	// not look), Do cannot tell which came first and returns the caller's
	// error, not a *TimeoutError (the default, which watches the caller's
	// context from the start, reports the timeout).
	//
	// Default false: every call gets a context of its own, which stays
	// cancelled, with the caller's Values, for as long as anything holds
	// it. It applies to Do and Call in the cooperative mode only, not to
	// Abandon (whose fn outlives the call by design), RoundTripper,
	// Handler or grpcx.
	ReuseContexts bool

	// Header is the HTTP request header that carries the time budget from
	// one hop to the next: RoundTripper sends the time its attempt has
	// left, and Handler applies the budget it receives. The value is the
	// budget in whole milliseconds, 1 to 10 ASCII digits and nothing else
	// (see the package doc). Default "Request-Timeout-Ms"
	// ([DefaultHeader]). [NoHeader] ("-") turns propagation off: nothing
	// is sent and the header is ignored. Otherwise it must be a valid
	// header name (an RFC 9110 token) of at most [MaxHeaderLen] bytes,
	// and not one that HTTP manages (Connection, Content-Length, Expect,
	// Host, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding,
	// Upgrade): net/http does not send those from a request's header
	// map, or proxies remove them, and servers read them for themselves.
	Header string

	// MeterProvider receives the Timeout's metrics; nil means the global
	// provider.
	MeterProvider metric.MeterProvider
}

// Validate reports the first bad value of c as a *bulwark.ConfigError
// (errors.Is(err, bulwark.ErrInvalidConfig)), or nil.
func (c Config) Validate() error {
	v := validate.New("timeout")
	v.Duration("Timeout", c.Timeout, MaxTimeout)
	v.Check(c.Header == "" || c.Header == NoHeader ||
		(len(c.Header) <= MaxHeaderLen && httpx.IsToken(c.Header) && !managed[http.CanonicalHeaderKey(c.Header)]),
		"Header", c.Header, `"" (default), "-" (off) or a header name (an RFC 9110 token) of at most 128 bytes, `+
			`not one HTTP manages (Connection, Content-Length, Expect, Host, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade)`)
	return v.Err()
}

// managed holds the (canonical) names of the header fields HTTP itself
// manages: net/http's transport does not send them from the header map,
// or proxies remove them (hop-by-hop, RFC 9110 section 7.6.1), and their
// values mean something else to the server.
var managed = map[string]bool{
	"Connection": true, "Content-Length": true, "Expect": true, "Host": true, "Keep-Alive": true,
	"Proxy-Connection": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}
