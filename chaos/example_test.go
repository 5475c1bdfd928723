package chaos_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/bulwark-go/bulwark/chaos"
)

func Example() {
	inj := chaos.New(chaos.Config{Faults: []chaos.Fault{{
		Name:       "orders-down",
		PathPrefix: "/orders",
		Action:     chaos.Error,
		HTTPStatus: http.StatusServiceUnavailable,
	}}})
	defer inj.Close()

	srv := httptest.NewServer(inj.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})))
	defer srv.Close()

	get := func(path, drill string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if drill != "" {
			req.Header.Set("Bulwark-Chaos", drill)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Printf("%s drill=%q: %d [%s]\n", path, drill, resp.StatusCode, resp.Header.Get(chaos.FaultHeader))
	}

	get("/orders", "d1") // disabled: nothing happens
	inj.Enable()
	get("/orders", "d1") // drill traffic on a targeted route
	get("/orders", "")   // production traffic is left alone
	get("/users", "d1")  // another route is left alone
	fmt.Println(inj.Injected())
	// Output:
	// /orders drill="d1": 200 []
	// /orders drill="d1": 503 [orders-down]
	// /orders drill="": 200 []
	// /users drill="d1": 200 []
	// map[orders-down:1]
}
