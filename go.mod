module github.com/nsproxy/nsproxy

go 1.26.8

require (
	github.com/pires/go-proxyproto v0.15.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
