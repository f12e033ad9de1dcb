package protocol

import (
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/skyedge/skyedge/protocol/skyedgev1"
)

// validUTF8 enforces proto3's rule that strings are UTF-8, which the
// generated fast decoder leaves to its caller. Reports, the bulk of the
// traffic, are checked field by field; the rarer bodies by reflection.
func validUTF8(env *pb.Envelope) bool {
	switch b := env.GetBody().(type) {
	case *pb.Envelope_Report:
		return reportUTF8(b.Report)
	case *pb.Envelope_Summary:
		return reportUTF8(b.Summary.GetLast()) && reflectUTF8(b.Summary.ProtoReflect())
	case *pb.Envelope_Batch:
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
	for _, d := range r.GetDisks() {
		if !utf8.ValidString(d.GetMount()) {
			return false
		}
	}
	for _, n := range r.GetNets() {
		if !utf8.ValidString(n.GetIface()) {
			return false
		}
	}
	for _, t := range r.GetTemps() {
		if !utf8.ValidString(t.GetSensor()) {
			return false
		}
	}
	return true
}

func reflectUTF8(m protoreflect.Message) bool {
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
