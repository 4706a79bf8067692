package manifest_test

import (
	"fmt"

	"github.com/nsproxy/nsproxy/sidecar/manifest"
)

const doc = `apiVersion: nsproxy.io/v1alpha1
kind: Tenant
metadata:
  name: acme
spec:
  frontends:
    - name: web
      binds:
        - addr: 0.0.0.0:80
      backend: app
      maxconn: 100
`

func ExampleDecode() {
	set, err := manifest.Decode("acme.yaml", []byte(doc))
	if err != nil {
		fmt.Println(err)
		return
	}
	// A validator that finds a problem with a field positions it so:
	fmt.Println(set.Where("Tenant/acme.spec.frontends[0].binds[0].addr"))
	fmt.Println(set.Where("Tenant/acme.spec.frontends[0].clientTimeout")) // not given: its frontend
	// Output:
	// acme.yaml:9:17
	// acme.yaml:7:7
}

func ExampleDecode_errors() {
	_, err := manifest.Decode("acme.yaml", []byte(`apiVersion: nsproxy.io/v1alpha1
kind: Tenant
metadata: {name: acme}
spec:
  frontends:
    - {name: web, binds: [{addr: ":80"}], backend: app, maxcon: 100}
  limits: {maxConnections: "5"}
`))
	fmt.Println(err)
	// Output:
	// acme.yaml:6:57: unknown field "maxcon" in spec.frontends[0]; did you mean "maxconn"?
	// acme.yaml:7:28: spec.limits.maxConnections: want a whole number, not the string "5"; remove the quotes
}

func ExampleDiff() {
	old, _ := manifest.Decode("old.yaml", []byte(doc))
	new, _ := manifest.Decode("new.yaml", []byte(doc+"      clientTimeout: 30s\n"))
	text, changed := manifest.Diff(old, new)
	fmt.Print(text)
	fmt.Println(changed)
	// Output:
	// ~ Tenant/acme: spec.frontends[web].clientTimeout: <unset> -> "30s"
	// true
}
