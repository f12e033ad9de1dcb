package spec

import (
	"slices"
	"sort"
)

// Requirements returns the selector as requirements: each MatchLabels
// entry as an In requirement, sorted by key, then MatchExpressions in
// order. A nil selector has none and matches every site.
func (s *NodeSelector) Requirements() []Requirement {
	if s == nil {
		return nil
	}
	keys := make([]string, 0, len(s.MatchLabels))
	for k := range s.MatchLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]Requirement, 0, len(keys)+len(s.MatchExpressions))
	for _, k := range keys {
		out = append(out, Requirement{Key: k, Operator: OpIn, Values: []string{s.MatchLabels[k]}})
	}
	return append(out, s.MatchExpressions...)
}

// Empty reports whether the selector has no requirement.
func (s *NodeSelector) Empty() bool {
	return s == nil || len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0
}

// Matches reports whether labels satisfy every requirement.
func (s *NodeSelector) Matches(labels map[string]string) bool {
	if s == nil {
		return true
	}
	for k, v := range s.MatchLabels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	for _, r := range s.MatchExpressions {
		if !r.Matches(labels) {
			return false
		}
	}
	return true
}

// Matches reports whether labels satisfy r. An unknown operator matches
// nothing.
func (r Requirement) Matches(labels map[string]string) bool {
	v, ok := labels[r.Key]
	switch r.Operator {
	case OpIn:
		return ok && slices.Contains(r.Values, v)
	case OpNotIn:
		return !ok || !slices.Contains(r.Values, v)
	case OpExists:
		return ok
	case OpDoesNotExist:
		return !ok
	}
	return false
}
