package protocol

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// validUTF8 enforces proto3's rule that strings are UTF-8, which the
// generated fast decoder leaves to its caller, and that unknown fields are
// well formed (the fast decoder skips a group without checking that it
// ends with its own field number). Reports, the bulk of the traffic, are
// checked field by field; the rarer bodies by reflection.
func validUTF8(env *pb.Envelope) bool {
	switch b := env.GetBody().(type) {
	case *pb.Envelope_Report:
		return unknownOK(env.ProtoReflect()) && reportUTF8(b.Report)
	case *pb.Envelope_Summary:
		return unknownOK(env.ProtoReflect()) && reportUTF8(b.Summary.GetLast()) && reflectUTF8(b.Summary.ProtoReflect())
	case *pb.Envelope_Batch:
		if !unknownOK(env.ProtoReflect()) || !unknownOK(b.Batch.ProtoReflect()) {
			return false
		}
		for _, e := range b.Batch.GetEnvelopes() {
			if !utf8.ValidString(e.GetNodeId()) || !validUTF8(e) {
				return false
			}
		}
		return true
	default:
		return reflectUTF8(env.ProtoReflect())
	}
}

func reportUTF8(r *pb.ResourceReport) bool {
	if r == nil {
		return true
	}
	if !unknownOK(r.ProtoReflect()) || r.Container != nil && !unknownOK(r.Container.ProtoReflect()) {
		return false
	}
	for _, d := range r.GetDisks() {
		if !utf8.ValidString(d.GetMount()) || !unknownOK(d.ProtoReflect()) {
			return false
		}
	}
	for _, n := range r.GetNets() {
		if !utf8.ValidString(n.GetIface()) || !unknownOK(n.ProtoReflect()) {
			return false
		}
	}
	for _, t := range r.GetTemps() {
		if !utf8.ValidString(t.GetSensor()) || !unknownOK(t.ProtoReflect()) {
			return false
		}
	}
	return true
}

// unknownOK reports whether m's unknown fields parse by the rules
// proto.Unmarshal applies, groups closed by their own field number
// included.
func unknownOK(m protoreflect.Message) bool {
	b := m.GetUnknown()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return false
		}
		b = b[n:]
	}
	return true
}

func reflectUTF8(m protoreflect.Message) bool {
	if !unknownOK(m) {
		return false
	}
	ok := true
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				ok = valueUTF8(fd.MapKey(), k.Value()) && valueUTF8(fd.MapValue(), mv)
				return ok
			})
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && ok; i++ {
				ok = valueUTF8(fd, l.Get(i))
			}
		default:
			ok = valueUTF8(fd, v)
		}
		return ok
	})
	return ok
}

func valueUTF8(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return utf8.ValidString(v.String())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return reflectUTF8(v.Message())
	}
	return true
}
