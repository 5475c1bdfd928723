package redisstore_test

import (
	"context"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/degrade"
	"github.com/bulwark-go/bulwark/degrade/redisstore"
)

func Example() {
	mr, _ := miniredis.Run() // any Redis: a server, Sentinel, Cluster
	defer mr.Close()

	// Two instances of a service, each with its own client.
	newInstance := func() (*degrade.Switches, chan degrade.SwitchEvent, *redis.Client) {
		rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		changes := make(chan degrade.SwitchEvent, 8)
		sw := degrade.NewSwitches(degrade.SwitchesConfig{
			Store:    redisstore.New(rdb, redisstore.Config{}),
			OnChange: func(_ context.Context, ev degrade.SwitchEvent) { changes <- ev },
		})
		return sw, changes, rdb
	}
	a, _, rdbA := newInstance()
	b, bChanges, rdbB := newInstance()
	defer rdbA.Close()
	defer rdbB.Close()
	defer a.Close()
	defer b.Close()

	if err := a.Set(context.Background(), "recommendations", false); err != nil {
		fmt.Println(err)
		return
	}
	ev := <-bChanges // instance b hears of it
	fmt.Println(ev.Name, ev.On, b.Switch("recommendations").On())
	// Output: recommendations false false
}
