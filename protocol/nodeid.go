package protocol

import (
	"errors"
	"fmt"
)

// ErrInvalidNodeID is wrapped by ValidateNodeID's errors.
var ErrInvalidNodeID = errors.New("invalid node ID")

// ValidateNodeID checks that id can serve as a node's identity everywhere
// it appears: certificate common name, MQTT client ID, one topic level,
// a file name and a Kubernetes-style object name. It must be 1 to
// MaxNodeIDLength characters of a-z, 0-9, '-', '_' and '.', starting and
// ending with a letter or digit.
func ValidateNodeID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty", ErrInvalidNodeID)
	}
	if len(id) > MaxNodeIDLength {
		return fmt.Errorf("%w %q: longer than %d characters", ErrInvalidNodeID, id, MaxNodeIDLength)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if alnum {
			continue
		}
		if (c == '-' || c == '_' || c == '.') && i > 0 && i < len(id)-1 {
			continue
		}
		if c >= 'A' && c <= 'Z' {
			return fmt.Errorf("%w %q: upper-case letters are not allowed (use %q)", ErrInvalidNodeID, id, toLower(id))
		}
		return fmt.Errorf("%w %q: character %q at %d (allowed: a-z 0-9, and - _ . inside)", ErrInvalidNodeID, id, c, i)
	}
	return nil
}

func toLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
