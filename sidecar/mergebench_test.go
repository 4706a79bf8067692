package sidecar

import (
	"fmt"
	"testing"

	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/config"
)

// BenchmarkMerge: the CPU cost of merging and validating the run-time
// objects of one plan (no daemon, no state write): n API servers added to a
// backend of the files, 100 API backends of 10 servers and 100 API
// frontends.
func BenchmarkMerge(b *testing.B) {
	file, err := config.Parse("b.cfg", []byte(restoreCfg("127.0.0.1:24540", "127.0.0.1:24541")))
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("servers=%d", n), func(b *testing.B) {
			st := State{Servers: apiServers(n, "127.0.0.1:24541")}
			for i := 0; i < 100; i++ {
				be := api.Backend{Name: fmt.Sprintf("b%d", i), ConnectTimeout: "5s", Balance: "leastconn"}
				for j := 0; j < 10; j++ {
					be.Servers = append(be.Servers, api.Server{Name: fmt.Sprintf("s%d", j), Addr: "10.0.0.1:80", Check: true, Inter: "3s"})
				}
				st.Backends = append(st.Backends, be)
				st.Frontends = append(st.Frontends, api.Frontend{Name: fmt.Sprintf("f%d", i), Backend: be.Name, ClientTimeout: "30s",
					Binds: []api.Bind{{Addr: fmt.Sprintf("127.0.0.1:%d", 20000+i)}}})
			}

			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := merge(file, st, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
