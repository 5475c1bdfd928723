package lb_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"

	"github.com/bulwark-go/bulwark/lb"
)

// Three instances of a service behind one client: the RoundTripper sends
// each request to one of them, rewriting a clone of its URL.
func Example() {
	var eps []lb.Endpoint
	for _, name := range []string{"a", "b", "c"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, name)
		}))
		defer srv.Close()
		eps = append(eps, lb.Endpoint{Addr: srv.Listener.Addr().String()})
	}

	b := lb.New(lb.Config{Endpoints: eps, Policy: lb.RoundRobin()})
	defer b.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: b.RoundTripper(tr)}

	served := map[string]int{}
	for range 6 {
		resp, err := client.Get("http://inventory/items/42") // "inventory" is the logical host
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		served[string(body)]++
	}
	fmt.Println(served)
	// Output: map[a:2 b:2 c:2]
}

// The two-step form, for hot paths and adapters: Pick, make the call,
// hand the ticket back with its error.
func ExampleBalancer_Pick() {
	b := lb.New(lb.Config{Endpoints: []lb.Endpoint{{Addr: "10.0.0.1:80"}}})
	defer b.Close()

	t, err := b.Pick()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("calling", t.Addr())
	b.Done(t, nil) // the call's error; nil is a success
	// Output: calling 10.0.0.1:80
}

// Sticky routing: equal keys go to the same endpoint.
func ExampleRingHash() {
	b := lb.New(lb.Config{
		Endpoints: []lb.Endpoint{{Addr: "10.0.0.1:80"}, {Addr: "10.0.0.2:80"}, {Addr: "10.0.0.3:80"}},
		Policy:    lb.RingHash(lb.HashConfig{}),
		HashKey:   lb.CookieKey("session"), // for RoundTripper
	})
	defer b.Close()

	first, _ := b.PickKey("user-17")
	b.Done(first, nil)
	again, _ := b.PickKey("user-17")
	b.Done(again, nil)
	fmt.Println(first.Addr() == again.Addr())
	// Output: true
}

// Do and Call pick, run the function with the endpoint and record its
// outcome.
func ExampleCall() {
	b := lb.New(lb.Config{Endpoints: []lb.Endpoint{{Addr: "10.0.0.1:80", Zone: "eu-west-1a"}}})
	defer b.Close()

	zone, err := lb.Call(context.Background(), b, func(ctx context.Context, ep lb.Endpoint) (string, error) {
		return ep.Zone, nil // a real call would dial ep.Addr
	})
	fmt.Println(zone, err)
	// Output: eu-west-1a <nil>
}

// A weighted set: nginx's smooth weighted round robin.
func ExampleWeightedRoundRobin() {
	b := lb.New(lb.Config{
		Endpoints: []lb.Endpoint{{Addr: "big:80", Weight: 3}, {Addr: "small:80", Weight: 1}},
		Policy:    lb.WeightedRoundRobin(),
	})
	defer b.Close()

	count := map[string]int{}
	for range 400 {
		t, _ := b.Pick()
		count[t.Addr()]++
		b.Done(t, nil)
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Println(k, count[k])
	}
	// Output:
	// big:80 300
	// small:80 100
}
