package ocihook

import (
	"encoding/json"
	"errors"
	"fmt"
)

// State is the container state the runtime writes to a hook's stdin (OCI
// runtime spec, "state").
type State struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Pid         int               `json:"pid,omitempty"`
	Bundle      string            `json:"bundle"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// ParseState decodes and checks an OCI state document.
func ParseState(b []byte) (State, error) {
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("container state on stdin is not OCI state JSON: %w", err)
	}
	if st.ID == "" {
		return st, errors.New("container state has no id")
	}
	if st.Pid < 0 {
		return st, fmt.Errorf("container state has a negative pid %d", st.Pid)
	}
	return st, nil
}
