// Package archtest holds the tests that keep SkyEdge's architecture
// honest: imports point one way (cmd -> agent / bridge -> sync, device ->
// protocol), the agent and the bridge never import each other, and the
// agent binary stays free of server-side dependencies that would bloat it
// on small devices.
package archtest
