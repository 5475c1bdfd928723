// Package timeout bounds how long a call, an HTTP attempt or an HTTP
// request may take, tells a timeout apart from the caller's own
// cancellation, and propagates the time budget from one hop to the next.
//
//	t := timeout.New(timeout.Config{Name: "inventory", Timeout: 300 * time.Millisecond})
//	defer t.Close()
//	err := t.Do(ctx, func(ctx context.Context) error { return call(ctx) })
//	if errors.Is(err, timeout.ErrTimeout) { ... our limit, not the caller's ... }
//	item, err := timeout.Call(ctx, t, func(ctx context.Context) (Item, error) { ... })
//	client := &http.Client{Transport: t.RoundTripper(nil)} // per attempt, body included
//	handler := t.Handler(mux)                              // 504 at the deadline
//
// gRPC interceptors built on a Timeout are in package grpcx.
//
// # Errors
//
// When a Timeout's own time runs out, the error is a [*TimeoutError]: it
// matches [ErrTimeout] and [context.DeadlineExceeded] under errors.Is,
// carries the limit that ran out, and unwraps to the function's (or the
// transport's) own error, if any. Inside the call, context.Cause(ctx) is a
// *TimeoutError too, so a function can tell why its context ended. When
// the caller's context ends first (cancelled, or its own, earlier deadline
// passed) the error is the caller's, whatever its cause, and never matches
// ErrTimeout: a caller's cancellation is not a timeout of the dependency,
// and package bulwark's classification counts it as neither success nor
// failure.
//
// # Two modes
//
// Cooperative (the default): fn runs in the caller's goroutine with a
// context that ends at the deadline, and Do returns when fn does. Almost
// every Go function that blocks honours its context, and then Do returns
// at the deadline; a function that ignores it keeps the caller waiting
// (failsafe-go and resilience4j-style executors behave the same). It
// costs no goroutine.
//
// What the cooperative mode allocates per call (Go 1.26, measured by
// BenchmarkTimeoutDo in benchmarks/ and pinned by tests). "Watching"
// means that fn (or anything it calls: net/http, grpc-go) calls ctx.Done,
// or derives a context from ctx; a fn that only checks ctx.Err or
// ctx.Deadline does not watch.
//
//	caller's context                     fn does not watch  fn watches
//	deadline no later than the limit     0                  0 (fn gets ctx itself)
//	cannot be cancelled (Background)     1                  4
//	can be cancelled (a request's)       4                  5 (context.WithTimeoutCause's)
//	with Config.ReuseContexts            0                  4, or 6 under a cancellable one
//
// Under a caller's context that cannot be cancelled, fn's context is
// bulwark's own, made lazily: one allocation for the context, and the
// Done channel, its timer and the timer's callback only when something
// watches (Err compares the clock with the deadline meanwhile). It is a
// context in every way fn can tell: context.Cause, children derived from
// it (registered through its AfterFunc method, with no goroutine), Values
// from the caller. Under one that can be cancelled, fn's context must
// watch the caller's from the start to know which ended first, which
// costs context.AfterFunc's allocations on top of the lazy context's;
// context.WithTimeoutCause costs less there, and is used. A context
// bulwark made lazily counts as one that cannot be cancelled for this: it
// ends only at its deadline, which comes after the inner call's, or when
// its own call returns. The inner context watches it without arming it
// (no Done channel, timer or registration for the outer one), and ends
// with it if the outer call returns first. No context
// that may be kept after the call is allocation-free without being
// reused; [Config].ReuseContexts reuses them, for callers that promise
// not to keep them (read its contract). Without it, fn's context is never
// reused: kept past the call, it stays cancelled with the caller's Values.
//
// Abandoning (Config.Abandon): fn runs in a goroutine of its own, and Do
// returns at the deadline, or as soon as the caller's context ends, even
// when fn ignores its context. What becomes of the abandoned fn:
//
//   - it runs on until it returns (nothing can stop a goroutine); its
//     context is done, so anything it calls that honours contexts fails
//     fast;
//   - its result is discarded; the bulwark.timeout.abandoned_calls gauge
//     counts abandoned functions still running, so a dependency that
//     hangs shows up as a growing number, not as a silent leak of
//     goroutines;
//   - once it returns, its goroutine ends: no goroutine outlives the
//     function;
//   - a panic in it before the caller gave up is re-raised in the caller
//     as a [*PanicError] carrying the value and the stack of fn's
//     goroutine; a panic after abandonment has nobody left to receive it
//     and crashes the program with its own stack, as a panic in any
//     goroutine does (golang.org/x/sync/singleflight does the same):
//     swallowing it would hide a bug, and no caller could recover it.
//
// Use it for functions that cannot be cancelled (legacy clients, cgo,
// blocking syscalls) and whose callers must not wait past the deadline.
// It costs a goroutine and 9 allocations, 656 bytes, per call of Do (8
// for Call): about 1.1 µs of CPU per call on the benchmark machine (a
// 2-vCPU VM), where the cooperative mode takes 0.1 to 0.7 µs (measured in
// benchmarks/, BenchmarkTimeoutDo/bulwark-abandon, and pinned by a test).
// Config.ReuseContexts does not apply: an abandoned fn keeps its context
// by design. Handler honours Abandon too (see [Timeout.Handler]).
//
// # HTTP
//
// [Timeout.RoundTripper] bounds each request it sends, response body
// included: the attempt's context lives until the body is closed or the
// time runs out, and a Read cut short by the deadline fails with a
// *TimeoutError. The attempt's context is never reused (net/http may keep
// it); under a caller's context that cannot be cancelled it is made as
// the lazy one above, in one allocation with the body's wrapper, else by
// context.WithDeadlineCause. Over a transport that watches it, as
// net/http's does, a layer costs 7 allocations (5 with propagation off,
// 2 more under a caller's context that can be cancelled), measured by
// BenchmarkTimeoutRoundTripper. A layer under another Timeout's layer
// (the recommended stack's attempt timeout under its total timeout)
// watches the outer attempt's context without arming it, so the outer
// layer costs 2 allocations (its context, with the body's wrapper, and
// the request's copy) and no timer. When a call's context ends because
// the call returned (the body was closed), the contexts derived from it
// (net/http derives one from every request's) end in the same goroutine,
// before Close returns: no goroutine per request. In the recommended client stack it sits under retry and
// lb (a per-attempt timeout, so the breaker of a slow endpoint counts its
// timeouts), over the transport.
//
// [Timeout.Handler] gives each request the smaller of its own limit and
// the propagated budget, answers 504 Gateway Timeout at the deadline if
// the handler has written nothing yet, and refuses the handler's writes
// after it, without buffering the response (http.TimeoutHandler keeps
// the whole response in memory and hides http.Flusher) and without a data
// race on the ResponseWriter. See its doc for a handler that had already
// started writing, and for what Abandon changes. Each request costs one
// timer: the request's context is bulwark's own, and its timer both ends
// it and answers the 504 (BenchmarkTimeoutHandler: 5 allocations beyond
// a bare handler's, where http.TimeoutHandler makes 9 and starts a
// goroutine). What the handler derives from its request's context has
// ended by the time Handler returns, as with context's own contexts. In
// the recommended server stack it sits under health, degrade and limit,
// over the handler.
//
// # Deadline propagation
//
// RoundTripper sends, in the request header Config.Header (default
// Request-Timeout-Ms), the time the attempt has left: the smaller of
// Config.Timeout and the time to the request context's deadline. Handler
// reads it and applies the smaller of it and its own limit, so the next
// hop gives up when its caller has. The value is relative (no clock is
// shared between hosts), in whole milliseconds, rounded down:
//
//	Request-Timeout-Ms = 1*10DIGIT   ; ASCII digits only, leading zeros allowed
//
// 0 means no time left (Handler answers 504 without running the
// handler); a value over 24 h ([MaxTimeout]) is read as 24 h. Anything
// else (a sign, a unit, a fraction, whitespace between the digits, more
// than 10 digits, an empty value) is malformed, and a malformed or
// repeated header is ignored: the server's own limit applies. (Whitespace
// around the value is not part of it: HTTP servers strip it, as RFC 9110
// says.) A budget
// can only shorten the server's limit, never extend it, so a client gains
// nothing by lying. The name has no X- prefix (RFC 6648) and says its
// unit; it is configurable, and "-" turns propagation off. gRPC needs
// none of this: grpc-go propagates the deadline in grpc-timeout.
//
// # Defaults
//
//	field          default              why
//	Timeout        10 s                 a safety net for calls that hang; Polly 30 s, Envoy routes 15 s
//	Abandon        false (cooperative)  no goroutine per call; Go functions honour contexts
//	ReuseContexts  false                safe: a context kept past its call stays its own
//	Header         Request-Timeout-Ms   milliseconds, as Envoy's x-envoy-expected-rq-timeout-ms
//
// # Telemetry
//
// Meter "github.com/bulwark-go/bulwark/timeout", observable instruments
// read from the Timeout's counters at collection time, with attribute
// bulwark.name = Config.Name:
//
//	bulwark.timeout.timeouts         counter         {call}  calls, attempts and requests that timed out
//	bulwark.timeout.abandoned_calls  up-down counter {call}  abandoned functions still running
//
// A timeout adds the span event "bulwark.timeout.timed_out" (attribute
// bulwark.timeout.limit, in seconds) to the caller's recording span. The
// success path pays nothing for telemetry. Close unregisters the
// callbacks.
//
// # Migrating
//
// From context.WithTimeout around a call: Do does the same, with an error
// that tells the timeout from the caller's cancellation and a counter of
// timeouts. From failsafe-go's timeout policy: Do in cooperative mode
// behaves as failsafe's executor with a context does, and Abandon returns
// at the deadline where failsafe waits for the function. From
// http.TimeoutHandler: Handler answers 504 (not 503) and streams (no
// buffering), and honours the propagated budget.
package timeout
