//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"testing"
)

// ociImage is one image of an OCI archive: a single layer holding a static
// busybox and its applet links, and the entrypoint the image runs.
type ociImage struct {
	Ref        string   // full name, e.g. localhost/nsproxy-e2e/pause:1
	Entrypoint []string // the image's ENTRYPOINT
}

// busyboxLayer is an uncompressed layer tar: /bin/busybox (a copy of
// busybox, which must be static: the image has no libc), the applets the
// test runs as links to it, and the directories a scratch image lacks.
func busyboxLayer(t *testing.T, busybox string) []byte {
	t.Helper()
	bin, err := os.ReadFile(busybox)
	if err != nil {
		t.Skipf("%s: %v (install busybox-static: scripts/deps.sh)", busybox, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode})
	}
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "www"} {
		dir(d, 0o755)
	}
	dir("tmp", 0o1777)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin))})
	tw.Write(bin)
	for _, a := range []string{"sh", "sleep", "httpd", "echo", "cat", "mkdir"} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777})
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// writeOCIArchive writes an OCI image-layout tar holding images, all on
// the one busybox layer, that `ctr images import` takes without a registry:
// each index entry names its image (io.containerd.image.name) and carries
// the platform, so that import unpacks it for this host.
func writeOCIArchive(t *testing.T, path, busybox string, images []ociImage) {
	t.Helper()
	blobs := map[string][]byte{} // digest -> content
	add := func(b []byte) (string, int) {
		d := fmt.Sprintf("sha256:%x", sha256.Sum256(b))
		blobs[d] = b
		return d, len(b)
	}
	layer := busyboxLayer(t, busybox)
	layerDigest, layerSize := add(layer) // uncompressed: the diff ID is the digest
	type desc struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int               `json:"size"`
		Annotations map[string]string `json:"annotations,omitempty"`
		Platform    map[string]string `json:"platform,omitempty"`
	}
	var manifests []desc
	for _, img := range images {
		cfg, _ := json.Marshal(map[string]any{
			"architecture": runtime.GOARCH, "os": "linux",
			"config": map[string]any{"Entrypoint": img.Entrypoint, "WorkingDir": "/",
				"Env": []string{"PATH=/bin"}},
			"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
		})
		cfgDigest, cfgSize := add(cfg)
		man, _ := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
			"config": desc{MediaType: "application/vnd.oci.image.config.v1+json", Digest: cfgDigest, Size: cfgSize},
			"layers": []desc{{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: layerDigest, Size: layerSize}},
		})
		manDigest, manSize := add(man)
		manifests = append(manifests, desc{
			MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: manDigest, Size: manSize,
			Annotations: map[string]string{"io.containerd.image.name": img.Ref},
			Platform:    map[string]string{"architecture": runtime.GOARCH, "os": "linux"},
		})
	}
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": manifests})

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	file := func(name string, b []byte) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b))})
		tw.Write(b)
	}
	file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	file("index.json", index)
	for d, b := range blobs {
		file("blobs/sha256/"+d[len("sha256:"):], b)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
