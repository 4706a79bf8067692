// Command nullcni is a chained CNI plugin that does nothing: ADD prints
// the prevResult it was given, every other verb prints nothing. The churn
// benchmark (bench/churn.sh) chains it after bridge + host-local, as it
// chains nsproxy-cni, to measure what any chained plugin written in Go
// adds to an ADD: the runtime's exec of one more plugin and the start of a
// Go process. nsproxy-cni's share of an ADD is read against this floor.
// It imports nothing but the standard library's JSON, so that it starts
// as a minimal Go binary does.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

func main() {
	in, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
	if err != nil {
		fail(err)
	}
	if os.Getenv("CNI_COMMAND") != "ADD" {
		return
	}
	prev, err := prevResult(in)
	if err != nil {
		fail(err)
	}
	os.Stdout.Write(prev)
}

// prevResult is the prevResult of a chained plugin's config.
func prevResult(config []byte) (json.RawMessage, error) {
	var conf struct {
		PrevResult json.RawMessage `json:"prevResult"`
	}
	if err := json.Unmarshal(config, &conf); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(conf.PrevResult) == 0 || string(conf.PrevResult) == "null" {
		return nil, fmt.Errorf("no prevResult: chain nullcni after a plugin that makes the interface")
	}
	return conf.PrevResult, nil
}

// fail prints a CNI error and exits 1.
func fail(err error) {
	b, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "code": 999, "msg": "nullcni", "details": err.Error()})
	os.Stdout.Write(b)
	os.Exit(1)
}
