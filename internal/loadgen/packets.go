package loadgen

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// MQTT 3.1.1 control packet types (high nibble of the first byte).
const (
	typeConnect    = 1
	typeConnack    = 2
	typePublish    = 3
	typePuback     = 4
	typePingresp   = 13
	typeDisconnect = 14
)

// appendLength appends an MQTT remaining length.
func appendLength(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func appendString(b []byte, s string) []byte {
	return append(append(b, byte(len(s)>>8), byte(len(s))), s...)
}

// connectPacket is a clean-session CONNECT with clientID.
func connectPacket(clientID string, keepAliveS uint16) []byte {
	var body []byte
	body = appendString(body, "MQTT")
	body = append(body, 4, 0x02, byte(keepAliveS>>8), byte(keepAliveS)) // level 4, clean session
	body = appendString(body, clientID)
	return append(appendLength([]byte{typeConnect << 4}, len(body)), body...)
}

// publishPacket is a QoS 1 PUBLISH of payload to topic with packet ID 0;
// the ID's two bytes are at idOffset, to be patched before each send.
func publishPacket(topic string, payload []byte) (pkt []byte, idOffset int) {
	n := 2 + len(topic) + 2 + len(payload)
	pkt = appendLength([]byte{typePublish<<4 | 0x02}, n)
	pkt = appendString(pkt, topic)
	idOffset = len(pkt)
	pkt = append(pkt, 0, 0)
	return append(pkt, payload...), idOffset
}

var disconnectPacket = []byte{typeDisconnect << 4, 0}

// readPacket reads one packet header and its body into buf (grown as
// needed) and returns the packet type and body.
func readPacket(r *bufio.Reader, buf []byte) (typ byte, body []byte, err error) {
	first, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		if i == 4 {
			return 0, nil, errors.New("malformed remaining length")
		}
		d, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(d&0x7f) * mult
		mult *= 128
		if d&0x80 == 0 {
			break
		}
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	body = buf[:n]
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return first >> 4, body, nil
}

// connackError interprets a CONNACK body.
func connackError(body []byte) error {
	if len(body) != 2 {
		return fmt.Errorf("CONNACK of %d bytes, want 2", len(body))
	}
	if rc := body[1]; rc != 0 {
		return fmt.Errorf("connection refused by the broker (CONNACK return code %d)", rc)
	}
	return nil
}
