//go:build !linux

package cniplugin

import "errors"

// checkNetns: network namespaces exist on Linux only.
func checkNetns(path string, allowOwn bool) error {
	return errors.New("nsproxy-cni runs on Linux only")
}
