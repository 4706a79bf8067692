// Command nsproxy-cni is the nsproxy CNI plugin. Chain it after the plugin
// that creates the container's interface (e.g. bridge), in place of portmap
// for TCP:
//
//	{"type": "nsproxy-cni", "capabilities": {"portMappings": true}}
//
// It registers the container's network namespace and port mappings with
// the nsproxy daemon; see package cniplugin for the config keys and the
// behaviour of each verb.
package main

import (
	"os"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/nsproxy/nsproxy/cniplugin"
)

// version is set at build time (-X main.version=...).
var version = "dev"

func main() {
	p := &cniplugin.Plugin{Runtime: os.Getenv(cniplugin.EnvRuntime)}
	skel.PluginMainFuncs(p.Funcs(), cniplugin.SupportedVersions, cniplugin.About+" (version "+version+")")
}
