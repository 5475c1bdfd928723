module github.com/bulwark-go/bulwark/benchmarks

go 1.26

replace github.com/bulwark-go/bulwark => ../

require (
	github.com/cenkalti/backoff/v4 v4.3.0 // indirect
	github.com/failsafe-go/failsafe-go v0.9.8 // indirect
	github.com/hashicorp/go-cleanhttp v0.5.2 // indirect
	github.com/hashicorp/go-retryablehttp v0.7.8 // indirect
	github.com/sony/gobreaker/v2 v2.4.0 // indirect
	github.com/zeromicro/go-zero v1.10.3 // indirect
)
