package main

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
	"time"
)

// query builds a DNS query for name/type A with an EDNS OPT record.
func query(id uint16, name string) []byte {
	q := make([]byte, 12)
	binary.BigEndian.PutUint16(q[0:], id)
	q[2] = 0x01 // RD
	binary.BigEndian.PutUint16(q[4:], 1)
	binary.BigEndian.PutUint16(q[10:], 1) // ARCOUNT: the OPT record
	start := 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '.' {
			q = append(q, byte(i-start))
			q = append(q, name[start:i]...)
			start = i + 1
		}
	}
	q = append(q, 0, 0, 1, 0, 1)                      // root, QTYPE A, QCLASS IN
	q = append(q, 0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0) // OPT
	return q
}

func TestDNSReplyEchoesQuestionWithRcode(t *testing.T) {
	q := query(0xbeef, "2.0.0.127.zen.example.org")
	for _, rc := range []byte{rcodeRefused, rcodeNXDomain} {
		r, ok := dnsReply(q, rc)
		if !ok {
			t.Fatal("query dropped")
		}
		if binary.BigEndian.Uint16(r) != 0xbeef {
			t.Fatalf("id %x", r[:2])
		}
		if r[2]&0x80 == 0 || r[2]&0x01 == 0 {
			t.Fatalf("QR or RD not set: %08b", r[2])
		}
		if r[3]&0x0f != rc {
			t.Fatalf("rcode %d, want %d", r[3]&0x0f, rc)
		}
		if qd, an, ns, ar := binary.BigEndian.Uint16(r[4:]), binary.BigEndian.Uint16(r[6:]),
			binary.BigEndian.Uint16(r[8:]), binary.BigEndian.Uint16(r[10:]); qd != 1 || an+ns+ar != 0 {
			t.Fatalf("counts qd=%d an=%d ns=%d ar=%d", qd, an, ns, ar)
		}
		qlen := len(q) - 12 - 11
		if !bytes.Equal(r[12:], q[12:12+qlen]) {
			t.Fatalf("question not echoed: %x", r[12:])
		}
	}
}

func TestDNSReplyDropsResponsesAndRunts(t *testing.T) {
	if _, ok := dnsReply(make([]byte, 11), rcodeRefused); ok {
		t.Fatal("answered an 11-byte datagram")
	}
	q := query(1, "a.example")
	q[2] |= 0x80
	if _, ok := dnsReply(q, rcodeRefused); ok {
		t.Fatal("answered a response (would loop with another stub)")
	}
	// A truncated question is answered without it.
	q = query(2, "a.example")[:16]
	r, ok := dnsReply(q, rcodeRefused)
	if !ok || len(r) != 12 || binary.BigEndian.Uint16(r[4:]) != 0 {
		t.Fatalf("truncated question: ok=%v reply=%x", ok, r)
	}
}

func FuzzDNSReply(f *testing.F) {
	f.Add(query(7, "example.org"))
	f.Add([]byte("0123456789ab\x03abc\x00\x00\x01"))
	f.Fuzz(func(t *testing.T, q []byte) {
		r, ok := dnsReply(q, rcodeRefused)
		if !ok {
			return
		}
		if len(r) < 12 || !bytes.Equal(r[:2], q[:2]) || r[3]&0x0f != rcodeRefused {
			t.Fatalf("bad reply %x to %x", r, q)
		}
		if qd := binary.BigEndian.Uint16(r[4:]); (qd == 0) != (len(r) == 12) || qd > 1 {
			t.Fatalf("QDCOUNT %d with %d bytes", qd, len(r))
		}
		if !bytes.Equal(r[12:], q[12:12+len(r)-12]) {
			t.Fatalf("question bytes differ")
		}
	})
}

func TestServeDNSAnswersOverLoopback(t *testing.T) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan int)
	go func() {
		n, _ := serveDNS(conn, rcodeNXDomain)
		done <- n
	}()
	c, err := net.Dial("udp", conn.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 3 {
		if _, err := c.Write(query(uint16(100+i), "x.example")); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if binary.BigEndian.Uint16(buf) != uint16(100+i) || buf[3]&0x0f != rcodeNXDomain || n < 12 {
			t.Fatalf("reply %x", buf[:n])
		}
	}
	conn.Close()
	if n := <-done; n != 3 {
		t.Fatalf("answered %d, want 3", n)
	}
}
