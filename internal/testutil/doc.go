// Package testutil is the root of SkyEdge's test helpers: real brokers
// (mosquitto), fault injection on links (faultproxy) and fleets of
// in-process agents and bridges over real TLS.
package testutil
