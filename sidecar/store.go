package sidecar

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/nsproxy/nsproxy/internal/atomicfile"
	"github.com/nsproxy/nsproxy/sidecar/api"
	"github.com/nsproxy/nsproxy/sidecar/manifest"
)

// State is everything created at run time (API objects and attachments).
// It is written to disk before a change is acknowledged; configuration
// file objects are never in it (the files are their source).
type State struct {
	Version     int              `json:"version"`
	Namespaces  []api.Namespace  `json:"namespaces,omitempty"`
	Backends    []api.Backend    `json:"backends,omitempty"`
	Servers     []api.Server     `json:"servers,omitempty"` // added to any backend
	Frontends   []api.Frontend   `json:"frontends,omitempty"`
	Attachments []api.Attachment `json:"attachments,omitempty"`
	// Manifests are the applied tenant manifests; their frontends and
	// backends join the merge like API objects (origin manifest). A change
	// replaces the Set's slices, never modifies them in place. Left out of
	// the file when empty, so a state without manifests stays readable by
	// a daemon that predates them. They are those applied through the API
	// and those of the --manifests directory (dirOwned).
	Manifests manifest.Set `json:"manifests,omitzero"`
	// dirOwned holds the KIND/NAME of the documents the --manifests
	// directory owns: not written (the directory is their source; see
	// saved), never changed through the API.
	dirOwned map[string]bool
	// Ports are the host ports allocated from Exposure rules' ranges that
	// are not the container's first choice (preferredPort): the rest is
	// derived again from the attachments, so a restart gives every
	// container the port it had.
	Ports []PortAllocation `json:"ports,omitempty"`
}

// PortAllocation is a host port an Exposure rule gave an attachment.
type PortAllocation struct {
	api.AttachmentKey
	Rule string `json:"rule"`
	Port int    `json:"port"`
}

const stateVersion = 1

// ErrCorruptState: the state file could not be read back; it was moved
// aside (quarantined) and the daemon starts without run-time objects.
var ErrCorruptState = errors.New("nsproxy: state file is corrupt")

// clone copies the state for a change: its slices and each backend's
// servers, which changes append to, delete from and assign into. Maps and
// other nested slices are shared: a change replaces them, never modifies
// them in place. A deep copy through JSON cost more than the rest of a
// small change once thousands of objects were live.
func (s State) clone() State {
	out := s
	out.Namespaces = slices.Clone(s.Namespaces)
	out.Backends = slices.Clone(s.Backends)
	for i := range out.Backends {
		out.Backends[i].Servers = slices.Clone(out.Backends[i].Servers)
	}
	out.Servers = slices.Clone(s.Servers)
	out.Frontends = slices.Clone(s.Frontends)
	out.Attachments = slices.Clone(s.Attachments)
	return out
}

// saved is the part of st the state file holds. With an attachment
// directory, CNI attachments are left out: the plugin writes and syncs its
// record before it calls the daemon, and replay (at start) takes CNI
// attachments from the records only, so the state file's copy was never
// read back. Writing it made every ADD and DEL rewrite and fsync a file
// that grows with the live containers. Other attachments (the OCI hook's)
// stay in the file: an older hook writes no record.
//
// The --manifests directory's documents are left out too: the directory
// is their source, read again at start.
func (d *Daemon) saved(st State) State {
	if len(st.dirOwned) > 0 {
		var dir []string
		for k := range st.dirOwned {
			dir = append(dir, k)
		}
		st.Manifests.Positions = nil // not written; and not worth filtering
		st.Manifests = withoutDocs(st.Manifests, dir)
		st.dirOwned = nil
	}
	if len(st.Manifests.Tenants)+len(st.Manifests.Exposures)+len(st.Manifests.Services) == 0 {
		st.Manifests = manifest.Set{} // zero: left out of the file (omitzero)
	}
	if d.opt.AttachmentDir == "" {
		return st
	}
	out := st
	out.Attachments = nil
	for _, a := range st.Attachments {
		if !recordedSource(a.Source) {
			out.Attachments = append(out.Attachments, a)
		}
	}
	return out
}

// recordedSource: attachments of this source are durable as records.
func recordedSource(source string) bool { return source == api.SourceCNI || source == "" }

// store persists State as one JSON file, replaced atomically
// (atomicfile.Write, mode 0600): a crash leaves either the old or the new
// file, never a mix.
type store struct {
	path string
	// A successor holds its saves until its hand-over commits (hold,
	// release): until then the state file is the old daemon's, which may
	// serve on and write it (a hand-over it gave up); a successor that
	// withdraws writes nothing. mu guards held and pending.
	mu      sync.Mutex
	held    bool
	pending *State
}

// hold keeps every save in memory until release.
func (st *store) hold() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.held = true
}

// release writes the last save held, and no longer holds.
func (st *store) release() error {
	st.mu.Lock()
	st.held = false
	p := st.pending
	st.pending = nil
	st.mu.Unlock()
	if p == nil {
		return nil
	}
	return st.save(*p)
}

func (st *store) load() (State, error) {
	var s State
	if st.path == "" {
		return s, nil
	}
	b, err := os.ReadFile(st.path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("read state %s: %w", st.path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil || s.Version != stateVersion {
		if err == nil {
			err = fmt.Errorf("version %d, want %d", s.Version, stateVersion)
		}
		q := fmt.Sprintf("%s.corrupt-%s", st.path, time.Now().UTC().Format("20060102T150405.000000000"))
		if rerr := os.Rename(st.path, q); rerr != nil {
			return State{}, fmt.Errorf("%w: %s: %v; and it could not be moved aside: %v", ErrCorruptState, st.path, err, rerr)
		}
		return State{}, fmt.Errorf("%w: %s: %v; moved to %s, starting without run-time objects", ErrCorruptState, st.path, err, q)
	}
	return s, nil
}

func (st *store) save(s State) error {
	if st.path == "" {
		return nil
	}
	st.mu.Lock()
	if st.held {
		st.pending = &s
		st.mu.Unlock()
		return nil
	}
	st.mu.Unlock()
	s.Version = stateVersion
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(st.path), 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if err := atomicfile.Write(st.path, append(b, '\n')); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}
