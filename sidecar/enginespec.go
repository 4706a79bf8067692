package sidecar

import (
	"github.com/nsproxy/nsproxy/sidecar/config"
	"github.com/nsproxy/nsproxy/sidecar/proxy"
)

// engineSpec resolves a validated config into the engine's plain spec.
func engineSpec(c *config.Config) proxy.Spec {
	spec := proxy.Spec{MaxConn: c.Global.MaxConn, ProxyHeaderMaxSize: c.Global.ProxyHeaderMaxSize,
		NbThread: c.Global.NbThread}
	for _, f := range c.Frontends {
		spec.Frontends = append(spec.Frontends, frontendSpec(f))
	}
	for _, b := range c.Backends {
		spec.Backends = append(spec.Backends, backendSpec(b))
	}
	return spec
}

// frontendSpec is f as the engine runs it.
func frontendSpec(f *config.Frontend) proxy.FrontendSpec {
	fs := proxy.FrontendSpec{Name: f.Name, Tenant: tenantOr(f.Tenant), Backend: f.DefaultBackend,
		MaxConn: f.MaxConn, ClientTimeout: f.ClientTimeout, ClientFinTimeout: f.ClientFinTimeout,
		Proxy: proxy.ProxyPolicy{HeaderTimeout: f.ProxyHeaderTimeout, LenientNamespace: f.LenientNetnsTLV,
			Trusted: f.TrustedProxies}}
	for _, b := range f.Binds {
		fs.Binds = append(fs.Binds, proxy.BindSpec{Addr: b.Addr, Namespace: b.Namespace, AcceptProxy: b.AcceptProxy,
			V4V6: b.V4V6, V6Only: b.V6Only, NoTakeover: b.NoTakeover, AdoptFrom: b.AdoptFrom})
	}
	return fs
}

// backendSpec is b as the engine runs it.
func backendSpec(b *config.Backend) proxy.BackendSpec {
	bs := proxy.BackendSpec{Name: b.Name, Balance: string(b.Balance), ConnectTimeout: b.ConnectTimeout,
		ServerTimeout: b.ServerTimeout, ServerFinTimeout: b.ServerFinTimeout, CheckTimeout: b.CheckTimeout,
		Source: b.Source, UseSrcClientIP: b.UseSrcClientIP}
	for _, s := range b.Servers {
		bs.Servers = append(bs.Servers, proxy.ServerSpec{Name: s.Name, Addr: s.Addr, Port: s.Port,
			PortMode: proxy.PortMode(s.PortMode), PortOffset: s.PortOffset, Namespace: s.Namespace,
			ClientNamespace: s.ClientNamespace, Check: s.Check, Inter: s.Inter, Rise: s.Rise, Fall: s.Fall,
			Weight: s.Weight, Backup: s.Backup, Disabled: s.Disabled, SendProxy: s.SendProxy})
	}
	return bs
}
