package config_test

import (
	"fmt"

	"github.com/nsproxy/nsproxy/sidecar/config"
)

func ExampleParse() {
	src := []byte(`
namespace_list
	namespace netns1

frontend f_example
	bind 192.168.1.1:9990 namespace netns1 accept-proxy
	default_backend b_example

backend b_example
	mode tcp
	source 0.0.0.0 usesrc clientip
	server snodes * namespace *
	server local 10.0.0.2:+1000 check inter 5s
`)
	cfg, err := config.Parse("example.cfg", src)
	if err != nil {
		fmt.Println(err)
		return
	}
	f := cfg.Frontends[0]
	fmt.Println(f.Name, f.Binds[0].Addr, f.Binds[0].Namespace, f.Binds[0].AcceptProxy, "->", f.DefaultBackend)
	for _, s := range cfg.Backends[0].Servers {
		fmt.Println(s.Name, s.UsesClientDestination(), s.ClientNamespace, s.PortOffset, s.Check, s.Inter)
	}
	fmt.Println(cfg.NamespaceNames())

	_, err = config.Parse("bad.cfg", []byte("backend b1\n\tmode http\n\toptoin tcplog\n"))
	fmt.Println(err)
	// Output:
	// f_example 192.168.1.1:9990 netns1 true -> b_example
	// snodes true true 0 false 2s
	// local false false 1000 true 5s
	// [netns1]
	// bad.cfg:2: mode "http" in backend "b1": only mode tcp is supported; write mode tcp or remove the line
	// bad.cfg:3: unknown keyword "optoin" in backend "b1"; supported: mode, balance, timeout, server, source, default-server
}
