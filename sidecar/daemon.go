package sidecar

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nsproxy/nsproxy/sidecar/config"
	"github.com/nsproxy/nsproxy/sidecar/netns"
	"github.com/nsproxy/nsproxy/sidecar/proxy"
)

// Options configure a Daemon. Zero values are documented defaults.
type Options struct {
	// ConfigFiles are loaded in order (nsproxy run -f A -f B).
	ConfigFiles []string
	// NetnsDir holds named namespaces; "": /var/run/netns.
	NetnsDir string
	// DrainTimeout is how long Shutdown lets connections finish; 0: 10s.
	DrainTimeout time.Duration
	// ResyncEvery is the period of the namespace resync; 0: 1s.
	ResyncEvery time.Duration
	Logger      *slog.Logger
}

// Daemon wires the registry, the engine and the configuration.
type Daemon struct {
	opt    Options
	log    *slog.Logger
	reg    *netns.Registry
	engine *proxy.Engine

	mu  sync.Mutex // serialises reloads
	cfg *config.Config
}

// New loads and validates the configuration and prepares the daemon; it
// starts nothing. A config error is returned with every problem listed.
func New(opt Options) (*Daemon, error) {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.DrainTimeout <= 0 {
		opt.DrainTimeout = 10 * time.Second
	}
	cfg, err := config.Load(opt.ConfigFiles...)
	if err != nil {
		return nil, err
	}
	reg, err := netns.NewRegistry(opt.NetnsDir, opt.Logger)
	if err != nil {
		return nil, err
	}
	return &Daemon{opt: opt, log: opt.Logger, reg: reg, cfg: cfg, engine: proxy.New(reg, opt.Logger)}, nil
}

// Engine exposes the engine for status queries.
func (d *Daemon) Engine() *proxy.Engine { return d.engine }

// Registry exposes the namespace registry.
func (d *Daemon) Registry() *netns.Registry { return d.reg }

// Run applies the configuration and serves until ctx ends; reload receives
// a value for every reload request (SIGHUP). Then it drains and returns.
func (d *Daemon) Run(ctx context.Context, reload <-chan struct{}) error {
	if err := d.apply(d.cfg); err != nil {
		return err
	}
	wctx, stopWatch := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		d.reg.Watch(wctx, d.opt.ResyncEvery)
	}()
	d.log.Info("nsproxy running", "config", d.opt.ConfigFiles, "netns_dir", d.reg.Dir(),
		"frontends", len(d.cfg.Frontends), "backends", len(d.cfg.Backends))
	for {
		select {
		case <-ctx.Done():
			d.log.Info("shutting down: draining connections", "timeout", d.opt.DrainTimeout.String(),
				"connections", d.engine.Sessions())
			dctx, cancel := context.WithTimeout(context.Background(), d.opt.DrainTimeout)
			forced := d.engine.Shutdown(dctx)
			cancel()
			stopWatch()
			<-watchDone
			d.reg.Close()
			d.log.Info("stopped", "forced_closed", forced)
			return nil
		case <-reload:
			if err := d.Reload(); err != nil {
				d.log.Error("reload refused: the running configuration stays", "err", err.Error())
			}
		}
	}
}

// Reload loads the configuration files again and, only if they are valid,
// reconciles the engine with them.
func (d *Daemon) Reload() error {
	cfg, err := config.Load(d.opt.ConfigFiles...)
	if err != nil {
		return err
	}
	if err := d.apply(cfg); err != nil {
		return err
	}
	d.log.Info("configuration reloaded", "frontends", len(cfg.Frontends), "backends", len(cfg.Backends))
	return nil
}

func (d *Daemon) apply(cfg *config.Config) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.reg.SetNames(cfg.NamespaceNames()); err != nil {
		return fmt.Errorf("namespaces: %w", err)
	}
	var allowed []string
	for _, n := range cfg.Namespaces {
		allowed = append(allowed, n.Name)
	}
	d.reg.SetAllowed(allowed)
	if err := d.engine.Apply(engineSpec(cfg)); err != nil {
		return err
	}
	d.cfg = cfg
	return nil
}
