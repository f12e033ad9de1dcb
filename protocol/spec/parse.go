package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"gopkg.in/yaml.v3"
)

// ErrParse is wrapped by ParseWorkload's errors for documents that cannot
// be read at all.
var ErrParse = errors.New("parse workload")

// MaxDocumentSize bounds a workload document.
const MaxDocumentSize = 1 << 20

// ParseWorkload decodes one workload document, YAML or JSON (told apart by
// a leading '{'), and fills defaults (Default; an omitted replicas is 1).
// Unknown fields, duplicate keys and a second document are errors. It does
// not validate: call Validate on the result.
func ParseWorkload(data []byte) (*Workload, error) {
	if len(data) > MaxDocumentSize {
		return nil, fmt.Errorf("%w: document of %d bytes over the %d-byte limit", ErrParse, len(data), MaxDocumentSize)
	}
	w := &Workload{Spec: WorkloadSpec{Placement: Placement{Replicas: 1}}}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: empty document", ErrParse)
	}
	var err error
	if trimmed[0] == '{' {
		err = decodeJSON(trimmed, w)
	} else {
		err = decodeYAML(data, w)
	}
	if err != nil {
		return nil, err
	}
	w.Default()
	return w, nil
}

func decodeJSON(data []byte, w *Workload) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(w); err != nil {
		return fmt.Errorf("%w: %w", ErrParse, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: unexpected data after the workload object", ErrParse)
	}
	return nil
}

func decodeYAML(data []byte, w *Workload) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(w); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: empty document", ErrParse)
		}
		return fmt.Errorf("%w: %w", ErrParse, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: more than one YAML document; give one workload per document", ErrParse)
	}
	return nil
}
