package manifest

import (
	"os"
	"path/filepath"
	"testing"
)

// Every file of manifests/examples/ decodes and round-trips: the
// documentation's examples cannot rot.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../../manifests/examples/*.y*ml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, name := range files {
		t.Run(filepath.Base(name), func(t *testing.T) {
			s, err := Load(name)
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Tenants)+len(s.Exposures)+len(s.Services) == 0 {
				t.Fatal("no documents")
			}
			out, err := Encode(s)
			if err != nil {
				t.Fatal(err)
			}
			back, err := Decode(name, out)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !equalSets(s, back) {
				t.Errorf("round trip changed the Set:\n%s", out)
			}
		})
	}
	if _, err := Load("../../manifests/examples"); err != nil {
		t.Errorf("the directory as one apply: %v", err)
	}
	if _, err := os.Stat("../../manifests/examples/tenants.yaml"); err != nil {
		t.Error(err) // the README and the e2e suite name it
	}
}
