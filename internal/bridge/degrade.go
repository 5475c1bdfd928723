package bridge

import "github.com/bulwark-go/bulwark"

// DegradeCriticality is set by package degrade: the criticality (as its
// uint8 value) of a gRPC call to method carrying the criticality
// metadata value hdr, for an *degrade.Shedder: the longest matching
// Route, else hdr unless the shedder ignores it, else Default.
var DegradeCriticality func(shedder any, method, hdr string) uint8

// DegradeHeader is set by package degrade: the criticality metadata key
// (the header name, lower-cased) of an *degrade.Shedder.
var DegradeHeader func(shedder any) string

// DegradeOnShed is set by package degrade: it reports a shed call to the
// *degrade.Shedder's OnShed hook.
var DegradeOnShed func(shedder any, ctx any, criticality uint8, err error)

// DegradeThrottleClassify is set by package degrade: the Classify of an
// *degrade.Throttler's config (nil if unset).
var DegradeThrottleClassify func(throttler any) bulwark.Classifier

// DegradeSetClock is set by package degrade: it replaces an
// *degrade.Shedder's clock (a clock.Clock). Tests only: grpcx's tests
// drive a shedder into overload with a fake clock over a real connection.
var DegradeSetClock func(shedder any, clk any)
