package timeout_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/timeout"
)

func ExampleTimeout_Do() {
	t := timeout.New(timeout.Config{Name: "inventory", Timeout: 20 * time.Millisecond})
	defer t.Close()

	err := t.Do(context.Background(), func(ctx context.Context) error {
		<-ctx.Done() // a dependency that is too slow
		return ctx.Err()
	})
	fmt.Println(err)
	fmt.Println("ours:", errors.Is(err, timeout.ErrTimeout), "deadline:", errors.Is(err, context.DeadlineExceeded))

	// The caller's own cancellation is not a timeout.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = t.Do(ctx, func(ctx context.Context) error { return nil })
	fmt.Println(err, "ours:", errors.Is(err, timeout.ErrTimeout))
	// Output:
	// timeout: timed out after 20ms: context deadline exceeded
	// ours: true deadline: true
	// context canceled ours: false
}

func ExampleConfig_abandon() {
	t := timeout.New(timeout.Config{Timeout: 20 * time.Millisecond, Abandon: true})
	defer t.Close()

	release, finished := make(chan struct{}), make(chan struct{})
	err := t.Do(context.Background(), func(context.Context) error {
		defer close(finished)
		<-release // ignores its context: a legacy client, a blocking syscall
		return nil
	})
	fmt.Println("returned at the deadline:", errors.Is(err, timeout.ErrTimeout))
	close(release) // the abandoned function runs on until it returns
	<-finished
	// Output: returned at the deadline: true
}

// ReuseContexts makes a hot, cooperative call allocation-free, for a fn
// that keeps its promise: it neither uses nor keeps ctx once it has
// returned (here it only reads ctx's deadline and error).
func ExampleConfig_reuseContexts() {
	t := timeout.New(timeout.Config{Timeout: time.Second, ReuseContexts: true})
	defer t.Close()

	lookup := func(ctx context.Context) error {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) <= 0 {
			return errors.New("no time left")
		}
		return ctx.Err() // a fast in-process lookup: nothing to wait for
	}
	allocs := testing.AllocsPerRun(100, func() { _ = t.Do(context.Background(), lookup) })
	fmt.Println("allocations per call:", allocs)
	// Output: allocations per call: 0
}

func ExampleCall() {
	t := timeout.New(timeout.Config{Timeout: time.Second})
	defer t.Close()
	n, err := timeout.Call(context.Background(), t, func(context.Context) (int, error) { return 42, nil })
	fmt.Println(n, err)
	// Output: 42 <nil>
}

func ExampleTimeout_RoundTripper() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("budget received:", r.Header.Get("Request-Timeout-Ms") != "")
		io.WriteString(w, "first part, ")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // the rest is too slow
	}))
	defer srv.Close()

	// (A limit far above the time the headers take even on a loaded
	// machine: the example's output must not depend on scheduling.)
	perAttempt := timeout.New(timeout.Config{Timeout: time.Second})
	defer perAttempt.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: perAttempt.RoundTripper(tr)}

	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body) // the limit covers the body too
	fmt.Printf("%d %q\n", resp.StatusCode, body)
	fmt.Println("timed out reading the body:", errors.Is(err, timeout.ErrTimeout))
	// Output:
	// budget received: true
	// 200 "first part, "
	// timed out reading the body: true
}

func ExampleTimeout_Handler() {
	t := timeout.New(timeout.Config{Timeout: 20 * time.Millisecond})
	defer t.Close()
	late := make(chan error, 1)
	srv := httptest.NewServer(t.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // too slow: the client has had its 504 by now
		_, err := io.WriteString(w, "too late")
		late <- err
	})))
	defer srv.Close()

	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("%d %s", resp.StatusCode, body)
	fmt.Println("late write:", <-late)
	// Output:
	// 504 timeout: timed out after 20ms
	// late write: http: Handler timeout
}
