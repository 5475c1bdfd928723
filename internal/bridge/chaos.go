package bridge

import "time"

// ChaosPick is set by package chaos: for an *chaos.Injector inj, the fault
// plan of a gRPC call to method whose drill metadata is drill (ok false:
// no fault, or the injector is disabled). It counts the fault it picks.
var ChaosPick func(inj any, method, drill string) (delay time.Duration, action uint8, name string, code int, ok bool)

// ChaosHeader is set by package chaos: the metadata key (the drill header,
// lower-cased) of an *chaos.Injector.
var ChaosHeader func(inj any) string
