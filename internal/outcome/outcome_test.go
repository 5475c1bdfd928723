package outcome

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"

	"go.uber.org/goleak"

	"github.com/bulwark-go/bulwark"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHTTPStatusFailure(t *testing.T) {
	cases := map[int]bool{
		200: false, 201: false, 204: false, 301: false, 304: false,
		400: false, 401: false, 403: false, 404: false, 409: false,
		408: true, 429: true,
		500: true, 501: false, 502: true, 503: true, 504: true, 599: true,
		600: false, 0: false,
	}
	for code, want := range cases {
		if got := HTTPStatusFailure(code); got != want {
			t.Errorf("HTTPStatusFailure(%d) = %v, want %v", code, got, want)
		}
	}
}

func TestError(t *testing.T) {
	live := context.Background()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithTimeout(context.Background(), -1)
	defer cancel2()
	errGone := errors.New("user went away")
	withCause, cancel3 := context.WithCancelCause(context.Background())
	cancel3(errGone)
	superseded, cancel4 := context.WithCancelCause(context.Background())
	cancel4(bulwark.ErrSuperseded)
	expiredCause, cancel5 := context.WithTimeoutCause(context.Background(), -1, errGone)
	defer cancel5()

	cases := []struct {
		name string
		ctx  context.Context
		err  error
		want Outcome
	}{
		{"nil error", live, nil, Success},
		{"plain error", live, io.EOF, Failure},
		{"caller cancelled", canceled, context.Canceled, Neutral},
		{"caller cancelled, wrapped", canceled, fmt.Errorf("dial: %w", context.Canceled), Neutral},
		{"canceled error but caller ctx alive", live, context.Canceled, Failure},
		{"caller cancelled, call returned another error", canceled, io.EOF, Neutral},
		{"caller cancelled with a cause, the cause returned", withCause, errGone, Neutral},
		{"caller cancelled with a cause, wrapped", withCause, fmt.Errorf("get: %w", errGone), Neutral},
		{"superseded by a hedge", superseded, bulwark.ErrSuperseded, Failure},
		{"superseded, transport error", superseded, io.ErrUnexpectedEOF, Failure},
		{"deadline exceeded", expired, context.DeadlineExceeded, Failure},
		{"deadline exceeded with a cause", expiredCause, errGone, Failure},
		{"nil ctx", nil, context.Canceled, Failure},
	}
	for _, c := range cases {
		if got := Error(c.ctx, c.err); got != c.want {
			t.Errorf("%s: Error = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestHTTP(t *testing.T) {
	ctx := context.Background()
	if got := HTTP(ctx, &http.Response{StatusCode: 503}, nil); got != Failure {
		t.Errorf("503 = %v", got)
	}
	if got := HTTP(ctx, &http.Response{StatusCode: 404}, nil); got != Success {
		t.Errorf("404 = %v", got)
	}
	if got := HTTP(ctx, nil, errors.New("connection refused")); got != Failure {
		t.Errorf("transport error = %v", got)
	}
}

func TestString(t *testing.T) {
	for o, s := range map[Outcome]string{Success: "success", Failure: "failure", Neutral: "neutral", 9: "unknown"} {
		if o.String() != s {
			t.Errorf("%d.String() = %q", o, o.String())
		}
	}
}

func TestWithAndNoContext(t *testing.T) {
	always := func(context.Context, error) Outcome { return Neutral }
	boom := errors.New("boom")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		got  Outcome
		want Outcome
	}{
		{"With default success", With(nil, context.Background(), nil), Success},
		{"With default caller cancel", With(nil, canceled, boom), Neutral},
		{"With override", With(always, context.Background(), boom), Neutral},
		{"NoContext nil", NoContext(nil, nil), Success},
		{"NoContext canceled", NoContext(nil, context.Canceled), Neutral},
		{"NoContext failure", NoContext(nil, boom), Failure},
		{"NoContext override", NoContext(always, boom), Neutral},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}
