package testenv

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// StartWeaviateCluster starts n Weaviate nodes on loopback that form one
// cluster, as a replicated deployment runs: each node has its own ports
// and data directory, joins the first by gossip (CLUSTER_JOIN) and the
// Raft group of all n voters (RAFT_JOIN). Weaviate derives a node's data
// port from its gossip port and its internal RPC port from its Raft port
// (+1 each), so those come in consecutive pairs. Stop, Start and Restart of
// one node take it out of the cluster and back, keeping its data.
func StartWeaviateCluster(ctx context.Context, n int, opts WeaviateOptions) ([]*WeaviateServer, error) {
	binary, err := binaryOf(ctx, opts)
	if err != nil {
		return nil, err
	}
	return retryPortClash(func() ([]*WeaviateServer, error) { return startClusterOnce(ctx, binary, n, opts) })
}

func startClusterOnce(ctx context.Context, binary string, n int, opts WeaviateOptions) ([]*WeaviateServer, error) {
	// Every port of every node is chosen while all chosen ones are held,
	// so that no two coincide.
	var ports portSet
	defer ports.release()
	nodes := make([]*WeaviateServer, n)
	var join []string
	for i := range nodes {
		http, err := ports.one()
		if err != nil {
			return nil, err
		}
		grpc, err := ports.one()
		if err != nil {
			return nil, err
		}
		gossip, err := ports.pair()
		if err != nil {
			return nil, err
		}
		raft, err := ports.pair()
		if err != nil {
			return nil, err
		}
		dir, err := makeServerDir(fmt.Sprintf("weaviate-node%d", i+1))
		if err != nil {
			return nil, err
		}
		nodes[i] = &WeaviateServer{
			binary:  binary,
			dir:     dir,
			ports:   weaviatePorts{http: http, grpc: grpc, gossip: gossip, data: gossip + 1, raft: raft, raftRPC: raft + 1},
			timeout: opts.StartTimeout,
		}
		if nodes[i].timeout == 0 {
			nodes[i].timeout = 180 * time.Second
		}
		join = append(join, fmt.Sprintf("node%d:%d", i+1, raft))
	}
	for i, s := range nodes {
		env := append([]string{
			"CLUSTER_HOSTNAME=node" + strconv.Itoa(i+1),
			"CLUSTER_IN_LOCALHOST=true",
			"RAFT_JOIN=" + strings.Join(join, ","),
			"RAFT_BOOTSTRAP_EXPECT=" + strconv.Itoa(n),
		}, opts.Env...)
		if i > 0 {
			env = append(env, "CLUSTER_JOIN=127.0.0.1:"+strconv.Itoa(nodes[0].ports.gossip))
		}
		s.env = s.environment(WeaviateOptions{AsyncIndexing: opts.AsyncIndexing, Env: env})
	}
	ports.release()
	// The nodes become ready only together, once the Raft group has its
	// quorum, so they start concurrently; but a node gives up joining the
	// gossip of the first one if it is not listening yet, so the others
	// start once it is.
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = nodes[i].Start(ctx)
		}()
	}
	start(0)
	gossip := "127.0.0.1:" + strconv.Itoa(nodes[0].ports.gossip)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", gossip, time.Second); err == nil {
			c.Close()
			break
		}
	}
	for i := 1; i < n; i++ {
		start(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			var logs strings.Builder
			for j, s := range nodes {
				if j != i {
					fmt.Fprintf(&logs, "\n--- node%d ---\n%s", j+1, logTail(s.LogPath(), 15))
				}
			}
			for _, s := range nodes {
				s.Close()
			}
			return nil, fmt.Errorf("testenv: weaviate cluster node %d: %w%s", i+1, err, logs.String())
		}
	}
	return nodes, nil
}

// portSet hands out distinct free loopback ports, holding each until
// release.
type portSet struct{ held []net.Listener }

func (ps *portSet) hold(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	ps.held = append(ps.held, l)
	return true
}

// one returns a free port.
func (ps *portSet) one() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testenv: pick a free loopback port: %w", err)
	}
	ps.held = append(ps.held, l)
	return l.Addr().(*net.TCPAddr).Port, nil
}

// pair returns a free port whose successor is free too.
func (ps *portSet) pair() (int, error) {
	for range 50 {
		p, err := ps.one() // held even when unusable, so it is not offered again
		if err != nil {
			return 0, err
		}
		if ps.hold(p + 1) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("testenv: no two consecutive free loopback ports found")
}

func (ps *portSet) release() {
	for _, l := range ps.held {
		l.Close()
	}
	ps.held = nil
}
