package cniconf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nsproxy/nsproxy/internal/atomicfile"
)

// DefaultBinDirs are where runtimes look for CNI plugins by default:
// containerd and the reference plugins' /opt/cni/bin, Debian's podman
// /usr/lib/cni.
var DefaultBinDirs = []string{"/opt/cni/bin", "/usr/lib/cni"}

// MissingPlugins lists the plugin types of a conflist's chain, IPAM
// plugins included, that no directory holds as an executable file. A
// runtime that cannot find one of them fails every ADD of the network.
func MissingPlugins(data []byte, dirs []string) []string {
	var c struct {
		Plugins []struct {
			Type string `json:"type"`
			IPAM struct {
				Type string `json:"type"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if json.Unmarshal(data, &c) != nil {
		return nil // install has already reported what is wrong with it
	}
	var missing []string
	for _, p := range c.Plugins {
		for _, typ := range []string{p.Type, p.IPAM.Type} {
			if typ == "" || slices.Contains(missing, typ) {
				continue
			}
			found := !strings.ContainsRune(typ, '/') && slices.ContainsFunc(dirs, func(dir string) bool {
				return isExecutable(filepath.Join(dir, typ))
			})
			if !found {
				missing = append(missing, typ)
			}
		}
	}
	return missing
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// CheckPluginBinary fails unless binDir holds nsproxy-cni as an
// executable: a conflist naming a missing plugin disables the whole
// network.
func CheckPluginBinary(binDir string) error {
	if !isExecutable(filepath.Join(binDir, PluginType)) {
		return fmt.Errorf("%s is not an executable in %s: install it first (--plugin-binary), "+
			"a conflist naming a missing plugin disables the whole network", PluginType, binDir)
	}
	return nil
}

// InstallPluginBinary copies src to binDir/nsproxy-cni with a rename
// (atomicfile.Write, mode 0755), so that a runtime executing the old
// binary is never disturbed (no ETXTBSY, no half-written file). It says
// what it did, or with dryRun what it would do.
func InstallPluginBinary(src, binDir string, dryRun bool) (string, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	dst := filepath.Join(binDir, PluginType)
	if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, data) {
		return dst + ": up to date", nil
	}
	if dryRun {
		return dst + ": dry run: would copy " + src, nil
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", err
	}
	if err := atomicfile.Write(dst, data, atomicfile.WithMode(0o755)); err != nil {
		return "", err
	}
	return dst + ": copied from " + src, nil
}
