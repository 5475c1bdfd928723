package lb_test

import (
	"errors"
	"testing"

	"github.com/bulwark-go/bulwark/health"
	"github.com/bulwark-go/bulwark/lb"
)

var _ health.Endpoints = (*lb.Balancer)(nil)

func TestEndpointHealthCountsHealthyEndpoints(t *testing.T) {
	b := lb.New(lb.Config{Endpoints: []lb.Endpoint{{Addr: "127.0.0.1:1"}, {Addr: "127.0.0.1:2"}, {Addr: "127.0.0.1:3"}}})
	defer b.Close()
	if h, n := b.EndpointHealth(); h != 3 || n != 3 {
		t.Fatalf("EndpointHealth() = %d, %d; want 3, 3", h, n)
	}
	if err := b.Update([]lb.Endpoint{{Addr: "127.0.0.1:1"}}); err != nil {
		t.Fatal(err)
	}
	if h, n := b.EndpointHealth(); h != 1 || n != 1 {
		t.Fatalf("after Update: EndpointHealth() = %d, %d; want 1, 1", h, n)
	}
}

func TestEndpointHealthLeavesOutEjected(t *testing.T) {
	b := lb.New(lb.Config{Policy: lb.RoundRobin(), Endpoints: []lb.Endpoint{{Addr: "127.0.0.1:1"}, {Addr: "127.0.0.1:2"}}})
	defer b.Close()
	for range 20 { // the default outlier rule ejects after 5 failures in a row
		tk, err := b.Pick()
		if err != nil {
			t.Fatal(err)
		}
		var fail error
		if tk.Addr() == "127.0.0.1:1" {
			fail = errors.New("connection refused")
		}
		b.Done(tk, fail)
	}
	if h, n := b.EndpointHealth(); h != 1 || n != 2 {
		t.Fatalf("EndpointHealth() = %d, %d after one endpoint failed 10 times; want 1, 2", h, n)
	}
}
