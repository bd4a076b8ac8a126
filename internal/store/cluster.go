package store

import (
	"context"
	"sort"
	"time"
)

// Node is one mailgate process working on the store.
type Node struct {
	ID       string // node_id: leases are taken in its name
	Hostname string
	Version  string
	Started  time.Time
	// Seen is the time of the node's latest heartbeat, read from the
	// store's clock (the database server's on PostgreSQL), so comparing it
	// with ClusterStatus.Now does not depend on any node's clock.
	Seen  time.Time
	Addrs []string // listen addresses (SMTP inbound, outbound, HTTP)
}

// OwnerLeases counts the recipients leased to one owner.
type OwnerLeases struct {
	Owner      string
	Recipients int
	// Expired leases are still in the owner's name but past their time:
	// any node claims them at its next poll (the owner died or stalls).
	Expired int
}

// ClusterStatus is the cluster as the store sees it.
type ClusterStatus struct {
	Now    time.Time // the store's clock
	Nodes  []Node    // by ID
	Leases []OwnerLeases
	// Queue depth in recipients: Queued never attempted, Deferred after a
	// failed attempt (waiting for the next one), Held by an operator or
	// for a damaged message.
	Queued, Deferred, Held int
	// Oldest is when the oldest message still waiting for delivery (a
	// queued recipient, not held) was received; zero when none waits.
	Oldest time.Time
	// ArchivePending counts the messages waiting to be archived.
	ArchivePending int
}

// NodeState is a node with what the cluster status says of it.
type NodeState struct {
	Node
	Alive  bool // heard from within deadAfter
	Leases OwnerLeases
}

// States lists the nodes, alive or dead by deadAfter, with their leases,
// then any other lease owner (a node that never sent a heartbeat, such as
// a command-line tool) as a node with only an ID.
func (c ClusterStatus) States(deadAfter time.Duration) []NodeState {
	byOwner := map[string]OwnerLeases{}
	for _, l := range c.Leases {
		byOwner[l.Owner] = l
	}
	var out []NodeState
	for _, n := range c.Nodes {
		l := byOwner[n.ID]
		l.Owner = n.ID
		delete(byOwner, n.ID)
		out = append(out, NodeState{Node: n, Alive: c.Now.Sub(n.Seen) <= deadAfter, Leases: l})
	}
	var rest []string
	for o := range byOwner {
		rest = append(rest, o)
	}
	sort.Strings(rest)
	for _, o := range rest {
		out = append(out, NodeState{Node: Node{ID: o}, Leases: byOwner[o]})
	}
	return out
}

// ClusterStore keeps the nodes' heartbeats.
type ClusterStore interface {
	// Heartbeat records that node n is alive: its row is inserted or
	// replaced, with Seen from the store's clock, which it returns (a node
	// compares it with its own to find clock skew). Started and the other
	// fields are written as given.
	Heartbeat(ctx context.Context, n Node) (storeNow time.Time, err error)
	// NodeByID returns a node's row; ErrNotFound when it has none.
	NodeByID(ctx context.Context, id string) (Node, error)
	// ClusterStatus reads the nodes, the leases per owner and the queue depth.
	ClusterStatus(ctx context.Context) (ClusterStatus, error)
	// ForgetNodes deletes the rows of nodes not seen since before.
	ForgetNodes(ctx context.Context, before time.Time) (int, error)
}
