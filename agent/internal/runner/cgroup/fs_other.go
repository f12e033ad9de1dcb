//go:build !linux

package cgroup

// isCgroup2 reports false: cgroups are Linux only.
func isCgroup2(string) (bool, error) { return false, nil }
