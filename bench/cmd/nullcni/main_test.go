package main

import (
	"encoding/json"
	"testing"
)

func TestPrevResult(t *testing.T) {
	for _, tc := range []struct {
		name, config, want string
		err                bool
	}{
		{"chained", `{"cniVersion":"1.1.0","name":"n","type":"nullcni","prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.0.0.2/24"}]}}`,
			`{"cniVersion":"1.1.0","ips":[{"address":"10.0.0.2/24"}]}`, false},
		{"first in the chain", `{"cniVersion":"1.1.0","name":"n","type":"nullcni"}`, "", true},
		{"null prevResult", `{"prevResult":null}`, "", true},
		{"not JSON", `{"prevResult":`, "", true},
		{"empty", ``, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := prevResult([]byte(tc.config))
			if (err != nil) != tc.err || string(got) != tc.want {
				t.Errorf("prevResult = %s, %v; want %s, error %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func FuzzPrevResult(f *testing.F) {
	f.Add([]byte(`{"prevResult":{"cniVersion":"1.0.0"}}`))
	f.Add([]byte(`{"prevResult":[1,2]}`))
	f.Fuzz(func(t *testing.T, config []byte) {
		got, err := prevResult(config)
		if err == nil && !json.Valid(got) {
			t.Errorf("prevResult %q of %q is not JSON", got, config)
		}
	})
}
