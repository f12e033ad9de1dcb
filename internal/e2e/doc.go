// Package e2e holds SkyEdge's end-to-end tests: real agents and a real
// bridge over mutual TLS, through the embedded broker and through
// Mosquitto, in-process and as built binaries. The package has no
// non-test code besides this comment.
package e2e
