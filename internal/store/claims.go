package store

import (
	"encoding/json"
	"fmt"
)

// claimRoute is how a claim keeps its routes until it is served.
type claimRoute struct {
	Priority int    `json:"priority"`
	Target   string `json:"target"`
	TLS      string `json:"tls"`
}

// EncodeClaimRoutes is the stored form of a claim's routes (every backend
// keeps them as this JSON text until the claim is served).
func EncodeClaimRoutes(routes []Route) (string, error) {
	rs := []claimRoute{}
	for _, r := range routes {
		rs = append(rs, claimRoute{r.Priority, r.Target, r.TLS})
	}
	b, err := json.Marshal(rs)
	if err != nil {
		return "", fmt.Errorf("domain claim routes: %w", err)
	}
	return string(b), nil
}

// DecodeClaimRoutes reads routes stored by EncodeClaimRoutes.
func DecodeClaimRoutes(tenantID int64, name, stored string) ([]Route, error) {
	var rs []claimRoute
	if err := json.Unmarshal([]byte(stored), &rs); err != nil {
		return nil, fmt.Errorf("domain claim %q routes: %w", name, err)
	}
	var out []Route
	for _, r := range rs {
		out = append(out, Route{TenantID: tenantID, Priority: r.Priority, Target: r.Target, TLS: r.TLS})
	}
	return out, nil
}
