package api

import (
	"context"
	"net/http"
)

// UpgradePath starts a successor daemon that takes over (nsproxy upgrade).
const UpgradePath = "/v1/upgrade"

// UpgradeRequest asks the daemon to start Binary (default: the path it was
// started from) as its successor with its own run arguments.
type UpgradeRequest struct {
	Binary string `json:"binary,omitempty"`
}

// UpgradeResult says who serves now: NewPID took over every listener from
// OldPID, which drains its connections and exits.
type UpgradeResult struct {
	OldPID int    `json:"oldPid"`
	NewPID int    `json:"newPid"`
	Binary string `json:"binary"`
	// Listeners is how many listening sockets were handed over.
	Listeners int `json:"listeners"`
}

// Upgrade asks the daemon to hand over to a new binary and waits until the
// successor serves (or failed, and the old daemon serves on).
func (c *Client) Upgrade(ctx context.Context, req UpgradeRequest) (UpgradeResult, error) {
	var out UpgradeResult
	_, err := c.do(ctx, http.MethodPost, UpgradePath, req, &out)
	return out, err
}
