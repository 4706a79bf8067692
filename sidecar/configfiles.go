package sidecar

import "github.com/nsproxy/nsproxy/sidecar/config"

// loadFiles loads the configuration files; without any, the daemon is a
// pure CNI/OCI host daemon whose objects all come from the API and the
// attachment records.
func loadFiles(files []string) (*config.Config, error) {
	if len(files) == 0 {
		return config.Parse("(no configuration file)", nil)
	}
	return config.Load(files...)
}
