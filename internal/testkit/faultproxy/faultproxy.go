// Package faultproxy is a TCP proxy for tests that puts a bad network
// between immune and what it talks to (the service it probes, the fake
// GitHub): latency, connections reset at once, connections that are
// accepted and never answered, and answers trickled out slowly. Faults
// can be changed while connections come and go.
package faultproxy

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Faults is what the proxy does to each new connection.
type Faults struct {
	// Latency delays every chunk of the answer (upstream to client).
	Latency time.Duration
	// Reset closes each connection at once with a TCP reset.
	Reset bool
	// Blackhole accepts connections and reads them, but never answers.
	Blackhole bool
	// BytesPerSecond, when set, trickles the answer out at this rate.
	BytesPerSecond int
}

// Proxy forwards connections from its address to an upstream address.
type Proxy struct {
	ln       net.Listener
	upstream string

	mu     sync.Mutex
	faults Faults
	conns  []net.Conn
	closed bool
}

// Start starts a proxy to upstream (host:port) on 127.0.0.1 and stops it
// at the end of the test.
func Start(tb testing.TB, upstream string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{ln: ln, upstream: upstream}
	go p.accept()
	tb.Cleanup(p.Close)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Set replaces the faults for new connections.
func (p *Proxy) Set(f Faults) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = f
}

// Close stops the proxy and every connection through it.
func (p *Proxy) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns = append(p.conns, c)
	return true
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			return
		}
		p.mu.Lock()
		f := p.faults
		p.mu.Unlock()
		go p.serve(c, f)
	}
}

func (p *Proxy) serve(c net.Conn, f Faults) {
	switch {
	case f.Reset:
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // close sends RST
		}
		c.Close()
		return
	case f.Blackhole:
		io.Copy(io.Discard, c)
		c.Close()
		return
	}
	up, err := net.Dial("tcp", p.upstream)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(up) {
		c.Close()
		return
	}
	go func() {
		io.Copy(up, c)
		if tc, ok := up.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := up.Read(buf)
		if n > 0 {
			if f.Latency > 0 {
				time.Sleep(f.Latency)
			}
			if werr := write(c, buf[:n], f.BytesPerSecond); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	c.Close()
	up.Close()
}

// write writes b, at rate bytes per second when rate is set.
func write(c net.Conn, b []byte, rate int) error {
	if rate <= 0 {
		_, err := c.Write(b)
		return err
	}
	chunk := max(rate/20, 1) // 20 writes a second
	for len(b) > 0 {
		n := min(chunk, len(b))
		if _, err := c.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}
