// Package logfile keeps a workload's output in a size-bounded set of
// files that the workload writes directly.
//
// The workload holds the live file open with O_APPEND, so its output keeps
// flowing while the agent restarts or is killed; there is no pipe through
// the agent to break. Rotation is therefore copy-truncate: the live file
// is copied to path.1 (older copies shift to path.2 ...), then truncated in
// place, and the writer's next O_APPEND write lands at offset 0 of the same
// file. Output written between the copy and the truncation is lost; with
// periodic checks that window is a few microseconds per rotation.
package logfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
)

// Open opens (creating) path for appending, to be handed to a child as its
// stdout and stderr.
func Open(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	return f, nil
}

// Rotator rotates one log file.
type Rotator struct {
	Path string
	// MaxBytes is the size at which the live file is rotated.
	MaxBytes int64
	// Files is how many files are kept, the live one included, as Docker's
	// max-file: 3 keeps path, path.1 and path.2. Below 2, the live file is
	// only truncated.
	Files int
}

// Rotate rotates the file when it has reached MaxBytes, and reports
// whether it did. A missing file is not an error.
func (r Rotator) Rotate() (bool, error) {
	fi, err := os.Stat(r.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("rotate log: %w", err)
	}
	if r.MaxBytes <= 0 || fi.Size() < r.MaxBytes {
		return false, nil
	}
	if r.Files >= 2 {
		// Shift path.(n-1) -> path.n, dropping the oldest.
		for i := r.Files - 2; i >= 1; i-- {
			err := os.Rename(r.name(i), r.name(i+1))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return false, fmt.Errorf("rotate log: %w", err)
			}
		}
		if err := copyFile(r.Path, r.name(1)); err != nil {
			return false, fmt.Errorf("rotate log: %w", err)
		}
	}
	if err := os.Truncate(r.Path, 0); err != nil {
		return false, fmt.Errorf("rotate log: %w", err)
	}
	return true, nil
}

func (r Rotator) name(i int) string { return r.Path + "." + strconv.Itoa(i) }

// copyFile copies src to dst through a temporary file, so a crash leaves
// either the old or the new dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}

// MaxLine bounds one returned line; longer lines are cut.
const MaxLine = 16 << 10

// Tail returns the last n lines of the log kept by r, oldest first,
// reading the rotated files as needed; n <= 0 returns every line kept. A
// log never written is empty, not an error.
func (r Rotator) Tail(n int) ([]string, error) {
	var (
		ring []string
		next int // with a full ring: the oldest line, overwritten next
	)
	keep := func(line string) {
		if n > 0 && len(ring) == n {
			ring[next] = line
			next = (next + 1) % n
			return
		}
		ring = append(ring, line)
	}
	files := []string{r.Path}
	for i := 1; i < r.Files; i++ {
		files = append([]string{r.name(i)}, files...)
	}
	for _, name := range files {
		if err := eachLine(name, keep); err != nil {
			return nil, fmt.Errorf("tail log: %w", err)
		}
	}
	return append(ring[next:], ring[:next]...), nil
}

// eachLine calls fn for every whole line of the file name (a missing
// file has none). A final line without a newline is left out: it is being
// written, or was torn by a copy-truncate rotation, and shows once whole.
func eachLine(name string, fn func(string)) error {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 32<<10)
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if err == io.EOF {
			return nil // a partial last line, or none
		}
		whole := err == nil
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
		chunk = bytes.TrimRight(chunk, "\r\n")
		if len(line) < MaxLine {
			line = append(line, chunk[:min(len(chunk), MaxLine-len(line))]...)
		}
		if whole {
			fn(string(line))
			line = line[:0]
		}
	}
}
