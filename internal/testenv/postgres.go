package testenv

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresOptions configure StartPostgres. The zero value is what the
// integration tests use.
type PostgresOptions struct {
	// BinDir holds initdb and postgres. Empty means discover it (pg_config,
	// then /usr/lib/postgresql/15/bin) and install postgresql-15 if absent.
	BinDir string
	// Port to listen on; 0 picks a free loopback port.
	Port int
	// Settings are extra postgresql.conf parameters, applied after (and so
	// overriding) the defaults below.
	Settings map[string]string
	// StartTimeout bounds how long start-up may take; default 60 s.
	StartTimeout time.Duration
}

// defaultPostgresSettings make a cluster fit for logical replication tests.
// Durability is traded for speed: the data is thrown away after the run.
var defaultPostgresSettings = map[string]string{
	"listen_addresses":      "127.0.0.1",
	"wal_level":             "logical",
	"max_replication_slots": "100",
	"max_wal_senders":       "100",
	"max_connections":       "300",
	"fsync":                 "off",
	"synchronous_commit":    "off",
	"full_page_writes":      "off",
	"shared_buffers":        "256MB",
	"logging_collector":     "off",
	"log_min_messages":      "warning",
}

// PostgresServer is a throwaway PostgreSQL cluster run by this process.
// Stop and Start/Restart keep the data directory and port, which lets
// fault-injection tests take the database away and bring it back; Close
// stops the server and deletes everything.
type PostgresServer struct {
	binDir     string
	dir        string // root: data/, postgres.log, unix socket
	port       int
	settings   map[string]string
	credential *syscall.Credential // the postgres OS user when we are root
	timeout    time.Duration

	mu   sync.Mutex
	proc *process
}

// StartPostgres creates a new cluster in a temporary directory and starts it.
func StartPostgres(ctx context.Context, opts PostgresOptions) (*PostgresServer, error) {
	binDir, err := postgresBinDir(ctx, opts.BinDir)
	if err != nil {
		return nil, err
	}
	port := opts.Port
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	credential, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	dir, err := makeServerDir("pg")
	if err != nil {
		return nil, err
	}
	s := &PostgresServer{
		binDir:     binDir,
		dir:        dir,
		port:       port,
		settings:   maps.Clone(defaultPostgresSettings),
		credential: credential,
		timeout:    opts.StartTimeout,
	}
	if s.timeout == 0 {
		s.timeout = 60 * time.Second
	}
	maps.Copy(s.settings, opts.Settings)
	s.settings["port"] = strconv.Itoa(port)
	s.settings["unix_socket_directories"] = dir

	if err := s.initCluster(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.Start(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// AdminDSN is the DSN of the superuser on the maintenance database postgres.
func (s *PostgresServer) AdminDSN() string { return s.DSN("postgres") }

// DSN is the superuser's DSN for database db.
func (s *PostgresServer) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// Port is the TCP port the server listens on (also across restarts).
func (s *PostgresServer) Port() int { return s.port }

// Dir is the server's root directory: data/ holds the cluster, postgres.log
// the server log, and the unix socket lives here too.
func (s *PostgresServer) Dir() string { return s.dir }

// LogPath is the file the server writes its log to.
func (s *PostgresServer) LogPath() string { return filepath.Join(s.dir, "postgres.log") }

func (s *PostgresServer) dataDir() string { return filepath.Join(s.dir, "data") }

// initCluster runs initdb and writes the configuration.
func (s *PostgresServer) initCluster(ctx context.Context) error {
	if s.credential != nil {
		// initdb refuses to run as root; the postgres user must own the tree.
		if err := chownTree(s.dir, int(s.credential.Uid), int(s.credential.Gid)); err != nil {
			return fmt.Errorf("testenv: hand %s to the postgres user: %w", s.dir, err)
		}
	}
	cmd := exec.CommandContext(ctx, filepath.Join(s.binDir, "initdb"),
		"-D", s.dataDir(), "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	cmd.Dir = s.dir // postgres needs a working directory it may read
	cmd.Env = postgresEnv()
	cmd.SysProcAttr = sysProcAttr(s.credential, syscall.SIGKILL)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testenv: initdb failed: %w\n%s", err, out)
	}

	var conf strings.Builder
	conf.WriteString("\n# cdc-indexer testenv\n")
	for _, k := range slices.Sorted(maps.Keys(s.settings)) {
		fmt.Fprintf(&conf, "%s = '%s'\n", k, strings.ReplaceAll(s.settings[k], "'", "''"))
	}
	if err := appendFile(filepath.Join(s.dataDir(), "postgresql.conf"), conf.String()); err != nil {
		return fmt.Errorf("testenv: write postgresql.conf: %w", err)
	}
	const hba = `# cdc-indexer testenv: trust local connections, including replication
local   all          all                 trust
local   replication  all                 trust
host    all          all   127.0.0.1/32  trust
host    replication  all   127.0.0.1/32  trust
`
	if err := os.WriteFile(filepath.Join(s.dataDir(), "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return fmt.Errorf("testenv: write pg_hba.conf: %w", err)
	}
	if s.credential != nil {
		if err := chownTree(s.dataDir(), int(s.credential.Uid), int(s.credential.Gid)); err != nil {
			return fmt.Errorf("testenv: chown data directory: %w", err)
		}
	}
	return nil
}

// Start starts the server on its data directory and port and waits until it
// accepts connections. It does nothing if the server is running.
//
// The postmaster runs as our direct child rather than through pg_ctl:
// pg_ctl detaches it into its own session, where it would survive a test
// binary killed by a timeout. Readiness is checked the way pg_ctl -w does in
// effect: by connecting.
func (s *PostgresServer) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil && !s.proc.exited() {
		return nil
	}
	logFile, err := os.OpenFile(s.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("testenv: open postgres log: %w", err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := exec.Command(filepath.Join(s.binDir, "postgres"), "-D", s.dataDir())
	cmd.Dir = s.dir
	cmd.Env = postgresEnv()
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// SIGQUIT is PostgreSQL's immediate shutdown: if we die, it goes at once.
	proc, err := startProcess(cmd, s.credential, syscall.SIGQUIT)
	if err != nil {
		return fmt.Errorf("testenv: start postgres: %w", err)
	}
	s.proc = proc
	if err := s.waitReady(ctx); err != nil {
		proc.stop(stopStep{syscall.SIGQUIT, 5 * time.Second})
		return fmt.Errorf("testenv: postgres on port %d did not become ready: %w\n%s", s.port, err, logTail(s.LogPath(), 30))
	}
	return nil
}

func (s *PostgresServer) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var lastErr error
	for {
		if s.proc.exited() {
			return fmt.Errorf("postgres exited: %v", s.proc.err)
		}
		attemptCtx, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(attemptCtx, s.AdminDSN())
		if err == nil {
			err = conn.Ping(attemptCtx)
			conn.Close(context.Background())
		}
		cancelAttempt()
		if err == nil {
			return nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last attempt: %v)", ctx.Err(), lastErr)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop shuts the server down with PostgreSQL's fast shutdown (SIGINT: abort
// transactions, disconnect clients, checkpoint), escalating to immediate
// shutdown and SIGKILL if it hangs. The data directory is kept.
func (s *PostgresServer) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	err := s.proc.stop(
		stopStep{syscall.SIGINT, 30 * time.Second},
		stopStep{syscall.SIGQUIT, 10 * time.Second},
	)
	s.proc = nil
	if err != nil {
		return fmt.Errorf("testenv: stop postgres on port %d: %w", s.port, err)
	}
	return nil
}

// Restart stops the server (fast shutdown) and starts it again on the same
// data directory and port.
func (s *PostgresServer) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start(ctx)
}

// Close stops the server and deletes its directory.
func (s *PostgresServer) Close() error {
	err := s.Stop()
	if rmErr := os.RemoveAll(s.dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("testenv: remove %s: %w", s.dir, rmErr))
	}
	return err
}

// postgresCredential returns the OS user to run PostgreSQL as: the
// postgres user when we are root (initdb and postgres refuse root),
// otherwise nil, meaning ourselves.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("testenv: running as root, and PostgreSQL refuses root, but there is no postgres OS user to run it as (install postgresql-15): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// Drop root's supplementary groups in favour of the postgres user's own.
	var groups []uint32
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.Atoi(id); err == nil {
				groups = append(groups, uint32(g))
			}
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}, nil
}

// postgresEnv is a minimal, predictable environment for initdb and postgres:
// the caller's locale or PG* variables must not leak into the test cluster.
func postgresEnv() []string {
	return []string{"PATH=/usr/bin:/bin", "LANG=C", "LC_ALL=C", "TZ=UTC"}
}

// postgresBinDir finds the directory with initdb and postgres, installing
// PostgreSQL 15 with apt-get when none is found and we are root.
func postgresBinDir(ctx context.Context, explicit string) (string, error) {
	if explicit != "" {
		if !hasPostgresBinaries(explicit) {
			return "", fmt.Errorf("testenv: %s has no initdb/postgres binaries", explicit)
		}
		return explicit, nil
	}
	if dir := findPostgresBinDir(ctx); dir != "" {
		return dir, nil
	}
	if err := installPostgres(ctx); err != nil {
		return "", err
	}
	if dir := findPostgresBinDir(ctx); dir != "" {
		return dir, nil
	}
	return "", errors.New("testenv: postgresql-15 was installed but initdb/postgres are still not found in /usr/lib/postgresql/15/bin")
}

func findPostgresBinDir(ctx context.Context) string {
	var candidates []string
	if dir := os.Getenv("CDC_TEST_PG_BIN"); dir != "" {
		candidates = append(candidates, dir)
	}
	candidates = append(candidates, "/usr/lib/postgresql/15/bin")
	if out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	for _, dir := range candidates {
		if hasPostgresBinaries(dir) {
			return dir
		}
	}
	return ""
}

func hasPostgresBinaries(dir string) bool {
	for _, name := range []string{"initdb", "postgres"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.IsDir() {
			return false
		}
	}
	return true
}

// installPostgres installs postgresql-15 non-interactively. The package
// would normally create and start a "main" cluster on port 5432; that is
// switched off, since every test run brings its own cluster.
func installPostgres(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("testenv: PostgreSQL 15 is not installed (no initdb in /usr/lib/postgresql/15/bin or pg_config --bindir) and we are not root to install it: run `apt-get install -y postgresql-15` or set CDC_TEST_PG_DSN to an existing server with wal_level=logical")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return errors.New("testenv: PostgreSQL 15 is not installed and apt-get is not available to install it; install PostgreSQL 15 or set CDC_TEST_PG_DSN")
	}
	return withFileLock("apt", func() error {
		if findPostgresBinDir(ctx) != "" {
			return nil // another test binary installed it while we waited
		}
		fmt.Fprintln(os.Stderr, "testenv: PostgreSQL 15 not found; installing postgresql-15 with apt-get")
		if err := os.MkdirAll("/etc/postgresql-common", 0o755); err != nil {
			return fmt.Errorf("testenv: prepare /etc/postgresql-common: %w", err)
		}
		conf := "/etc/postgresql-common/createcluster.conf"
		if _, err := os.Stat(conf); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(conf, []byte("create_main_cluster = false\n"), 0o644); err != nil {
				return fmt.Errorf("testenv: write %s: %w", conf, err)
			}
		}
		env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		for _, args := range [][]string{
			{"update"},
			{"install", "-y", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confold", "postgresql-15"},
		} {
			cmd := exec.CommandContext(ctx, "apt-get", args...)
			cmd.Env = env
			cmd.Stdout = os.Stderr
			cmd.Stderr = os.Stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("testenv: apt-get %s failed: %w", strings.Join(args, " "), err)
			}
		}
		return nil
	})
}

func chownTree(root string, uid, gid int) error {
	return filepath.WalkDir(root, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// PostgresProgram is the path of a PostgreSQL client program (pg_recvlogical,
// psql) next to the server the tests run.
func PostgresProgram(ctx context.Context, name string) (string, error) {
	dir := findPostgresBinDir(ctx)
	if dir == "" {
		return "", errors.New("testenv: PostgreSQL 15 is not installed (no initdb in /usr/lib/postgresql/15/bin or pg_config --bindir)")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("testenv: %s not found next to PostgreSQL: %w", name, err)
	}
	return p, nil
}
