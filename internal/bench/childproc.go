package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// childProc is a benchmark child process: this program re-executed in a
// role, reading commands on stdin, answering one line each on stdout,
// logging to a file. Closing its stdin stops it, so a child never
// outlives the benchmark.
type childProc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan []byte // stdout, line by line; closed at EOF
	logPath string
	done    chan struct{} // closed once the process has exited
	waitErr error         // set before done is closed
}

// startChild starts the child process of role with args, its stderr in
// logPath.
func startChild(env Env, role string, args []string, logPath string) (*childProc, error) {
	argv, err := env.childCommand()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("bench %s: %w", role, err)
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(argv[0], append(append([]string(nil), argv[1:]...), args...)...)
	cmd.Env = append(os.Environ(), ChildEnvVar+"="+role)
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("bench %s: %w", role, err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("bench %s: %w", role, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench %s: start %s: %w", role, argv[0], err)
	}
	c := &childProc{cmd: cmd, stdin: stdin, lines: make(chan []byte, 16), logPath: logPath, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 4096), 1<<20)
		for sc.Scan() {
			c.lines <- append([]byte(nil), sc.Bytes()...)
		}
		close(c.lines)
		c.waitErr = cmd.Wait() // after every read from the pipe, as os/exec requires
		close(c.done)
	}()
	return c, nil
}

// Pid is the child's process ID.
func (c *childProc) Pid() int { return c.cmd.Process.Pid }

// next returns the child's next line on stdout.
func (c *childProc) next(ctx context.Context, timeout time.Duration) ([]byte, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case line, ok := <-c.lines:
		if !ok {
			<-c.done
			return nil, fmt.Errorf("exited (%v); log: %s", c.waitErr, tail(c.logPath))
		}
		return line, nil
	case <-t.C:
		return nil, fmt.Errorf("no answer in %v; log: %s", timeout, tail(c.logPath))
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// send writes one command line.
func (c *childProc) send(line string) error {
	_, err := io.WriteString(c.stdin, line+"\n")
	return err
}

// stop closes the child's stdin and waits for it to exit, killing it
// after timeout.
func (c *childProc) stop(timeout time.Duration) error {
	c.stdin.Close()
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-c.lines: // drain, so the reader reaches EOF
		case <-c.done:
			if c.waitErr != nil {
				return fmt.Errorf("%w; log: %s", c.waitErr, tail(c.logPath))
			}
			return nil
		case <-t.C:
			_ = c.cmd.Process.Kill()
			<-c.done
			return fmt.Errorf("killed after not stopping in %v; log: %s", timeout, tail(c.logPath))
		}
	}
}

// tail returns the end of a log file for an error message.
func tail(path string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return path
	}
	s := strings.TrimSpace(string(raw))
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	if s == "" {
		return path + " (empty)"
	}
	return path + ":\n" + s
}
