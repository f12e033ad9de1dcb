package mqttwire

import (
	"bufio"
	"bytes"
	"testing"
)

func TestPackets(t *testing.T) {
	pkt, off := PublishPacket("a/b", []byte("xyz"))
	want := []byte{0x32, 10, 0, 3, 'a', '/', 'b', 0, 0, 'x', 'y', 'z'}
	if !bytes.Equal(pkt, want) || off != 7 {
		t.Errorf("PublishPacket = % x (id at %d), want % x (id at 7)", pkt, off, want)
	}
	for _, n := range []int{0, 127, 128, 16383, 16384, 2097151, 2097152} {
		b := AppendLength([]byte{0x30}, n)
		b = append(b, make([]byte, n)...)
		h, body, err := ReadPacket(bufio.NewReader(bytes.NewReader(b)), nil, 0)
		if err != nil || h>>4 != Publish || len(body) != n {
			t.Errorf("length %d: ReadPacket = type %d, %d bytes, %v", n, h>>4, len(body), err)
		}
	}
}

func TestPublishID(t *testing.T) {
	pkt := AppendPublish(nil, "a/b", 0x1234, []byte("xyz"))
	r := bufio.NewReader(bytes.NewReader(pkt))
	h, body, err := ReadPacket(r, nil, 64)
	if err != nil {
		t.Fatal(err)
	}
	id, ack, err := PublishID(h, body)
	if err != nil || !ack || id != 0x1234 {
		t.Errorf("PublishID = %#x, %v, %v; want 0x1234, true, nil", id, ack, err)
	}
	if _, _, err := ReadPacket(bufio.NewReader(bytes.NewReader(pkt)), nil, 4); err == nil {
		t.Error("ReadPacket over the limit: no error")
	}
}
