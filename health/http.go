package health

import (
	"encoding/json"
	"net/http"
	"time"
)

// Handler returns server-side middleware that answers the liveness probe
// at Config.LivePath ("/livez") and the readiness probe at
// Config.ReadyPath ("/readyz"), as [Health.Liveness] and
// [Health.Readiness] do, and passes every other request to next
// untouched. Put it outermost in a server's stack, so that shedding and
// rate limits never reject a probe. A nil next panics.
func (h *Health) Handler(next http.Handler) http.Handler {
	if next == nil {
		panic("health: Health.Handler called with a nil next")
	}
	live, ready := h.Liveness(), h.Readiness()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case h.cfg.LivePath:
			live.ServeHTTP(w, r)
		case h.cfg.ReadyPath:
			ready.ServeHTTP(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// Liveness returns the liveness probe's handler: it runs the liveness
// checks only (Check.Liveness) and answers as [Health.Group] does.
func (h *Health) Liveness() http.Handler { return h.Group(Live) }

// Readiness returns the readiness probe's handler: it runs every check and
// answers as [Health.Group] does, so it fails (503) when a critical check
// fails, and stays 200 when only Optional checks fail.
func (h *Health) Readiness() http.Handler { return h.Group(Ready) }

// Group returns a handler that runs the checks of group g (see
// [Health.Report]) under the request's context and answers 200 OK when the
// report's status is ok and 503 Service Unavailable otherwise, with
// Cache-Control: no-store and a JSON body (application/json) naming each
// check:
//
//	{
//	  "status": "fail",
//	  "checks": {
//	    "redis":  {"status": "timeout", "critical": true, "error": "timeout after 1s",
//	               "duration": "1s", "last_checked": "2026-11-28T14:05:00.123Z"},
//	    "search": {"status": "ok", "critical": false,
//	               "duration": "1.2ms", "last_checked": "2026-11-28T14:04:58Z"}
//	  }
//	}
//
// status is "ok" or "fail" overall, and "ok", "fail" or "timeout" per
// check; error is present only when a check did not pass; duration is a
// Go duration string; last_checked is when the run began, in RFC 3339
// with nanoseconds, UTC. The handler answers within the longest Timeout of
// the group, whatever its checks do.
func (h *Health) Group(g string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep := h.Report(r.Context(), g)
		body, _ := json.Marshal(rep) // cannot fail: strings, bools and times only
		hd := w.Header()
		hd.Set("Content-Type", "application/json")
		hd.Set("Cache-Control", "no-store")
		if rep.Status == StatusOK {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = w.Write(append(body, '\n'))
	})
}

type wireResult struct {
	Status      Status `json:"status"`
	Critical    bool   `json:"critical"`
	Error       string `json:"error,omitempty"`
	Duration    string `json:"duration"`
	LastChecked string `json:"last_checked"`
}

// MarshalJSON encodes a Result as in [Health.Group]'s body.
func (r Result) MarshalJSON() ([]byte, error) {
	return json.Marshal(wireResult{Status: r.Status, Critical: r.Critical, Error: r.Error,
		Duration: r.Duration.String(), LastChecked: r.Checked.UTC().Format(time.RFC3339Nano)})
}

// MarshalJSON encodes a Report as in [Health.Group]'s body.
func (r Report) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Status Status            `json:"status"`
		Checks map[string]Result `json:"checks"`
	}{r.Status, r.Checks})
}
