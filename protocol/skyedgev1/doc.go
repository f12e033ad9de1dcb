// Package skyedgev1 holds the Go types generated from
// protocol/proto/skyedge/v1/skyedge.proto. Do not edit the .pb.go files:
// change the .proto and run `make proto`.
package skyedgev1
