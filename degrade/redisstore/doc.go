// Package redisstore makes degrade's feature switches cluster-wide: a
// [Store] keeps every switch's value in one Redis hash and announces each
// change on a pub/sub channel, so that a switch flipped on one instance
// flips on every instance that watches the store.
//
//	store := redisstore.New(rdb, redisstore.Config{})
//	switches := degrade.NewSwitches(degrade.SwitchesConfig{Store: store})
//	defer switches.Close()
//
// # Keys
//
// The hash is <Prefix>{switches} (field: the switch name, value "1" or
// "0"), the channel <Prefix>{switches}:changes. A change is written by one
// Lua script (HSET then PUBLISH), so a value is never announced without
// being stored. The names a store accepts are degrade's: 1 to
// degrade.MaxSwitchName bytes; a stored name past that, or past
// degrade.MaxSwitches names, is ignored by the registry.
//
// # Outages
//
// A watcher that loses Redis keeps every switch at its last value (a
// feature switch fails static: neither on nor off by surprise), retries
// with a backoff up to one second, and when it has resubscribed reads the
// whole hash again, so a change made while it was cut off (or a Redis
// restored from an older backup) is applied. Set during an outage fails
// with Redis's error, and the switch does not change anywhere: the admin
// handler answers 503.
//
// Every operation runs under Config.Timeout (1 s by default) on top of the
// caller's context. go-redis applies a context's deadline to socket reads
// and writes only when the client has ContextTimeoutEnabled; otherwise a
// command is also bounded by the client's ReadTimeout and WriteTimeout.
package redisstore
