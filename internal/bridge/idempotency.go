package bridge

// IdempotencyMaxKeyLength returns an *idempotency.Keeper's resolved
// Config.MaxKeyLength, for grpcx's interceptor to parse keys as the
// Handler does. Set by package idempotency's init.
var IdempotencyMaxKeyLength func(keeper any) int
