package redistest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// readyLine is what redis-server logs once it accepts connections (Redis 6
// and 7 alike, with " tcp" appended by 7).
const readyLine = "Ready to accept connections"

// startTimeout bounds how long a redis-server may take to become ready
// (loading a test's snapshot takes milliseconds; a loaded CI machine may
// take a second).
const startTimeout = 20 * time.Second

// redisProcess is one run of a redis-server that the harness owns.
type redisProcess struct {
	cmd    *exec.Cmd
	log    *processLog
	exited chan struct{} // closed once the process is reaped
}

// processLog keeps what redis-server prints, and signals when it is ready.
type processLog struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan struct{}
	once  sync.Once
}

func (l *processLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() < 1<<20 { // bounded: a test's server logs a few lines
		l.buf.Write(p)
	}
	if bytes.Contains(l.buf.Bytes(), []byte(readyLine)) {
		l.once.Do(func() { close(l.ready) })
	}
	return len(p), nil
}

func (l *processLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startRedisServer runs redis-server on 127.0.0.1:port with its files in
// dir (dump.rdb is loaded if present) and returns once it accepts
// connections. Nothing is persisted on its own: the harness saves
// explicitly.
func startRedisServer(bin, dir string, port int) (*redisProcess, error) {
	cmd := exec.Command(bin,
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(port),
		"--dir", dir,
		"--dbfilename", "dump.rdb",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--logfile", "",
		"--loglevel", "notice",
		"--maxmemory-policy", "noeviction",
	)
	l := &processLog{ready: make(chan struct{})}
	cmd.Stdout = l
	cmd.Stderr = l
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &redisProcess{cmd: cmd, log: l, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case <-l.ready:
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("redis-server exited before accepting connections:\n%s", l)
	case <-timer.C:
		p.kill()
		return nil, fmt.Errorf("redis-server not ready after %v:\n%s", startTimeout, l)
	}
}

// kill stops the process at once (SIGKILL: a crash, not a shutdown) and
// waits until it is reaped.
func (p *redisProcess) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// addrInUse reports whether a failed start failed because its port was
// taken.
func addrInUse(err error) bool {
	return err != nil && strings.Contains(err.Error(), "Address already in use")
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

var errNoBinary = errors.New("redis-server not found on PATH")
